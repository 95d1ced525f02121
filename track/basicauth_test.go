package track_test

import (
	"encoding/base64"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/cioq/cioq/track"
)

// A key whose standard base64 holds '+' and '/' is sent by go-customerio v3
// in URL-safe base64 ('-' and '_'): both read the same.
func TestBasicAuth_StandardAndURLSafeBase64(t *testing.T) {
	t.Parallel()
	const site, key = "site>>>", "key???~~~"
	raw := site + ":" + key
	require.NotEqual(t, base64.StdEncoding.EncodeToString([]byte(raw)), base64.URLEncoding.EncodeToString([]byte(raw)),
		"the credentials must tell the two encodings apart")
	for name, enc := range map[string]*base64.Encoding{
		"Standard": base64.StdEncoding, "URLSafe": base64.URLEncoding, "URLSafeUnpadded": base64.RawURLEncoding,
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			r, err := http.NewRequest(http.MethodGet, "http://x/", nil)
			require.NoError(t, err)
			r.Header.Set("Authorization", "Basic "+enc.EncodeToString([]byte(raw)))
			gotSite, gotKey, ok := track.BasicAuth(r)
			require.True(t, ok)
			require.Equal(t, site, gotSite)
			require.Equal(t, key, gotKey)
		})
	}
	t.Run("NoCredentials", func(t *testing.T) {
		t.Parallel()
		for _, h := range []string{"", "Bearer abc", "Basic !!!", "Basic " + base64.StdEncoding.EncodeToString([]byte("no-colon"))} {
			r, err := http.NewRequest(http.MethodGet, "http://x/", nil)
			require.NoError(t, err)
			if h != "" {
				r.Header.Set("Authorization", h)
			}
			_, _, ok := track.BasicAuth(r)
			require.False(t, ok, h)
		}
	})
}
