package config

import (
	"bytes"
	"fmt"
	"reflect"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// YAML renders c as a YAML document in the config file's layout, with
// durations as "30s", every API key and password redacted, and the userinfo
// of every URL (the Redis URL, track_url: fields tagged redact:"url")
// redacted by RedactURL. It is what `cioq config check` prints.
func (c *Config) YAML() ([]byte, error) {
	n, err := toNode(reflect.ValueOf(*c))
	if err != nil {
		return nil, fmt.Errorf("config: render yaml: %w", err)
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(n); err != nil {
		return nil, fmt.Errorf("config: render yaml: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("config: render yaml: %w", err)
	}
	return buf.Bytes(), nil
}

var (
	durationType  = reflect.TypeFor[time.Duration]()
	marshalerType = reflect.TypeFor[yaml.Marshaler]()
)

// toNode turns a value into a yaml.Node, keeping struct field order and
// honouring yaml tags ("-", omitempty) and yaml.Marshaler (Secret, Redis).
// Only struct fields with a yaml name are settings.
func toNode(v reflect.Value) (*yaml.Node, error) {
	if v.Type() == durationType {
		return scalar(time.Duration(v.Int()).String(), "!!str"), nil
	}
	if v.Type().Implements(marshalerType) {
		var n yaml.Node
		if err := n.Encode(v.Interface()); err != nil {
			return nil, err
		}
		return &n, nil
	}
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			return scalar("null", "!!null"), nil
		}
		return toNode(v.Elem())
	case reflect.Struct:
		m := &yaml.Node{Kind: yaml.MappingNode}
		t := v.Type()
		for i := range t.NumField() {
			f := t.Field(i)
			name, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			if name == "" || name == "-" || !f.IsExported() {
				continue // not a setting (a nested component Config's wiring)
			}
			fv := v.Field(i)
			if strings.Contains(opts, "omitempty") && fv.IsZero() {
				continue
			}
			if f.Tag.Get("redact") == "url" && fv.Kind() == reflect.String {
				// A URL field (track_url): its userinfo is a credential.
				m.Content = append(m.Content, scalar(name, "!!str"), scalar(RedactURL(fv.String()), "!!str"))
				continue
			}
			vn, err := toNode(fv)
			if err != nil {
				return nil, err
			}
			m.Content = append(m.Content, scalar(name, "!!str"), vn)
		}
		return m, nil
	case reflect.Slice:
		s := &yaml.Node{Kind: yaml.SequenceNode}
		for i := range v.Len() {
			vn, err := toNode(v.Index(i))
			if err != nil {
				return nil, err
			}
			s.Content = append(s.Content, vn)
		}
		return s, nil
	}
	var n yaml.Node
	if err := n.Encode(v.Interface()); err != nil {
		return nil, err
	}
	return &n, nil
}

func scalar(value, tag string) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: tag, Value: value}
}
