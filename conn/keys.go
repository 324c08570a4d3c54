package conn

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	jsoniter "github.com/json-iterator/go"
	"go.etcd.io/etcd/client/pkg/v3/pathutil"
	clientv2 "go.etcd.io/etcd/client/v2"
)

// ErrTooBig is returned by Keys.Read when the answer is larger than the
// caller allowed; the rest of it was never read.
var ErrTooBig = errors.New("v2 answer larger than allowed")

// v2Client is a client made by V2: the client/v2 one, plus what Keys needs
// to make its own requests with the same transport and credentials.
type v2Client struct {
	clientv2.Client
	tr        *http.Transport
	endpoints []url.URL
	user, pw  string
}

// Keys is client/v2's KeysAPI with one more read: Read.
type Keys struct {
	clientv2.KeysAPI
	c      *v2Client
	hc     *http.Client
	pinned atomic.Int32
}

// NewKeysAPI is clientv2.NewKeysAPI; for a client made by V2 it returns a
// *Keys, whose Read the Gateway move uses to read many directories in
// one request.
func NewKeysAPI(c clientv2.Client) clientv2.KeysAPI {
	kapi := clientv2.NewKeysAPI(c)
	vc, ok := c.(*v2Client)
	if !ok {
		return kapi
	}
	return &Keys{KeysAPI: kapi, c: vc, hc: &http.Client{Transport: vc.tr}}
}

// v2Answer is the v2 API's answer to a read.
type v2Answer struct {
	Node *clientv2.Node `json:"node"`
}

// json decodes v2 answers as client/v2 does (json-iterator, keys matched
// case-sensitively), at a fraction of encoding/json's cost on large ones:
// the answers decodeNode leaves to it, and errors.
var v2json = jsoniter.Config{EscapeHTML: true, SortMapKeys: true, ValidateJsonRawMessage: true, CaseSensitive: true}.Froze()

// bufs holds answer buffers: a walk reads thousands of answers of up to
// its budget, and growing a fresh buffer for each was most of the
// client's cost after decoding.
var bufs = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// maxPooled is the largest buffer kept for reuse.
const maxPooled = 8 << 20

// Read reads key from the v2 store: one level (recursive false), as
// KeysAPI.Get does, or the whole subtree in one request. When max > 0 an
// answer of more than max bytes is dropped at that size and Read returns
// ErrTooBig, so that the caller's memory is bounded whatever the subtree
// holds (client/v2 reads an answer whole before looking at it). The index
// is the v2 store's index when the answer was made (X-Etcd-Index).
//
// Errors are client/v2's where it has one (clientv2.Error, so
// clientv2.IsKeyNotFound works), ErrUnreachable when no endpoint answers,
// and ErrV2Disabled when etcd answers without the v2 API. Endpoints are
// tried in turn from the last one that answered, as client/v2 does.
func (k *Keys) Read(ctx context.Context, key string, recursive bool, max int64) (*clientv2.Node, uint64, error) {
	eps := k.c.endpoints
	first := int(k.pinned.Load())
	var errs []string
	for i := 0; i < len(eps); i++ {
		n := (first + i) % len(eps)
		node, index, err := k.read(ctx, eps[n], key, recursive, max)
		if err == nil || !isTransport(err) {
			if n != first {
				k.pinned.Store(int32(n))
			}
			return node, index, err
		}
		if ctx.Err() != nil {
			return nil, 0, ctx.Err()
		}
		errs = append(errs, fmt.Sprintf("%s: %v", eps[n].Host, err))
	}
	return nil, 0, fmt.Errorf("%w: %s", ErrUnreachable, strings.Join(errs, "; "))
}

// transportError is a failure to talk to one endpoint: the next one may
// answer.
type transportError struct{ err error }

func (e transportError) Error() string { return e.err.Error() }
func (e transportError) Unwrap() error { return e.err }

func isTransport(err error) bool {
	var te transportError
	return errors.As(err, &te)
}

func (k *Keys) read(ctx context.Context, ep url.URL, key string, recursive bool, max int64) (*clientv2.Node, uint64, error) {
	u := ep
	if key != "" && key[0] != '/' {
		key = "/" + key
	}
	u.Path = pathutil.CanonicalURLPath(u.Path + "/v2/keys" + key)
	if recursive {
		u.RawQuery = "recursive=true"
	} else {
		// Sorted, as KeysAPI.Get with Sort: one level costs etcd little
		// to sort, and a walk then makes the same choices every time.
		u.RawQuery = "sorted=true"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, 0, err
	}
	if k.c.user != "" {
		req.SetBasicAuth(k.c.user, k.c.pw)
	}
	resp, err := k.hc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, 0, ctx.Err()
		}
		return nil, 0, transportError{err}
	}
	defer resp.Body.Close()
	var body io.Reader = resp.Body
	if max > 0 {
		body = io.LimitReader(resp.Body, max+1)
	}
	if max > 0 && resp.ContentLength > max {
		return nil, 0, tooBig(key, max)
	}
	buf := bufs.Get().(*bytes.Buffer)
	defer func() {
		if buf.Cap() <= maxPooled { // one huge directory does not stay pinned
			bufs.Put(buf)
		}
	}()
	buf.Reset()
	if resp.ContentLength > 0 {
		buf.Grow(int(resp.ContentLength))
	}
	_, err = buf.ReadFrom(body)
	b := buf.Bytes() // decoded into new strings below, so the buffer is reused
	if err != nil {
		if ctx.Err() != nil {
			return nil, 0, ctx.Err()
		}
		return nil, 0, transportError{err}
	}
	if max > 0 && int64(len(b)) > max {
		return nil, 0, tooBig(key, max)
	}
	index, _ := strconv.ParseUint(resp.Header.Get("X-Etcd-Index"), 10, 64)
	switch {
	case resp.StatusCode == http.StatusOK:
		if n, ok := decodeNode(b); ok && n != nil {
			return n, index, nil
		}
		var a v2Answer
		if err := v2json.Unmarshal(b, &a); err != nil || a.Node == nil {
			return nil, 0, fmt.Errorf("%w: the answer to GET %s is not a v2 node", ErrV2Disabled, u.Path)
		}
		return a.Node, index, nil
	case resp.StatusCode >= 500:
		// No leader, or the member is stopping: another may answer.
		return nil, 0, transportError{fmt.Errorf("etcd member answered %s", resp.Status)}
	}
	var e clientv2.Error
	if err := v2json.Unmarshal(b, &e); err != nil || e.Code == 0 {
		// etcd 3.5 without --enable-v2 answers 404 page not found; 3.4
		// answers with something that is not a v2 error either.
		return nil, 0, fmt.Errorf("%w: GET %s: %s %q", ErrV2Disabled, u.Path, resp.Status, firstLine(b))
	}
	return nil, 0, e
}

func tooBig(key string, max int64) error {
	return fmt.Errorf("%w: %s holds more than %d bytes", ErrTooBig, key, max)
}

func firstLine(b []byte) string {
	s, _, _ := strings.Cut(string(b), "\n")
	if len(s) > 80 {
		s = s[:80]
	}
	return s
}
