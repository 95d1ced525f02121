package config

import (
	"fmt"
	"io"
	"log/slog"
	"strings"
)

// Logger returns a slog.Logger writing to w at l.Level in l.Format. An
// unknown level means info and an unknown format means text (Validate
// reports both).
func (l Log) Logger(w io.Writer) *slog.Logger {
	level, err := parseLevel(l.Level)
	if err != nil {
		level = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: level}
	if strings.EqualFold(l.Format, LogFormatJSON) {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// parseLevel reads debug, info, warn (or warning) and error; empty is info.
func parseLevel(s string) (slog.Level, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "debug":
		return slog.LevelDebug, nil
	case "", "info":
		return slog.LevelInfo, nil
	case "warn", "warning":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("config: unknown log level %q", s)
}
