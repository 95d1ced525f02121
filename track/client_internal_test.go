package track

import (
	"bytes"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestNewClient_BuildsOneTunedHTTPClient(t *testing.T) {
	t.Parallel()
	c, err := NewClient(Config{SiteID: "s", APIKey: "k"})
	require.NoError(t, err)
	require.True(t, c.ownHC)
	tr, ok := c.hc.Transport.(*http.Transport)
	require.True(t, ok)
	require.Equal(t, DefaultTLSHandshakeTimeout, tr.TLSHandshakeTimeout)
	require.Equal(t, DefaultResponseHeaderTimeout, tr.ResponseHeaderTimeout)
	require.GreaterOrEqual(t, tr.MaxIdleConnsPerHost, 64)
	require.GreaterOrEqual(t, tr.MaxIdleConns, tr.MaxIdleConnsPerHost)
	require.False(t, tr.DisableKeepAlives)
	require.NotNil(t, tr.DialContext)
	require.Zero(t, c.hc.Timeout, "the per-request timeout comes from the context")
	require.Equal(t, DefaultTimeout, c.timeout)

	own := &http.Client{}
	c2, err := NewClient(Config{SiteID: "s", APIKey: "k", HTTPClient: own, Timeout: time.Second})
	require.NoError(t, err)
	require.Same(t, own, c2.hc)
	require.False(t, c2.ownHC)
	require.Equal(t, time.Second, c2.timeout)
}

func TestPooledBody_ReleasesOnlyWhenDoneAndClosed(t *testing.T) {
	t.Parallel()
	var pool sync.Pool
	body := &pooledBody{pool: &pool, buf: bytes.NewBufferString("abc")}
	r1 := body.open()
	r2 := body.open() // a GetBody retry
	require.NoError(t, r1.Close())
	body.finish()
	require.NotNil(t, body.buf, "a reader is still open")
	b, err := io.ReadAll(r2)
	require.NoError(t, err)
	require.Equal(t, "abc", string(b))
	require.NoError(t, r2.Close())
	require.NoError(t, r2.Close(), "a second Close is harmless")
	require.Nil(t, body.buf, "released once Do returned and every reader closed")

	early := &pooledBody{pool: &pool, buf: bytes.NewBufferString("x")}
	r := early.open()
	require.NoError(t, r.Close())
	require.NotNil(t, early.buf, "kept until Do returns")
	early.finish()
	require.Nil(t, early.buf)
}
