// Package jsonerrors gives the errors Traefik makes itself the design's JSON error body.
//
// Traefik answers some requests on its own, in plain text: 413 from the buffering middleware,
// 429 from rateLimit, 502/503/504 when no upstream answers. A frontend expects every error to
// be {"detail": "<sentence>", "code": "<snake_case>"} (docs/architecture.md), so this
// middleware, first in every router's chain, replaces the body of any error response (status
// >= 400) whose Content-Type is not JSON. The services always answer errors in JSON: those pass
// through byte for byte, with every header (their own 429 codes, Retry-After, RateLimit-*).
// Headers Traefik set on its own errors (Retry-After and X-Retry-In on a 429) are kept, and
// CORS headers are added for the services' origins.
//
// Request IDs: every request leaves the middleware with exactly one X-Request-ID, the caller's
// when it is valid (the services' rule: 1-128 of [A-Za-z0-9._:-]), else one made here (32
// lowercase hex characters from crypto/rand, like the services' uuid4().hex). The header is set
// on the request itself, so the service receives, logs and echoes that ID, and Traefik's access
// log, which reads the same request headers once the answer is sent, records it as
// request_X-Request-Id. Every response, the gateway's own errors included, carries exactly that
// one ID: a service's echo already is it; a response without it, or naming another, gets it.
//
// A request body the client framed wrongly (a bare LF or a non-hex or overflowing chunk size in
// chunked encoding, a body cut short) makes Traefik's `buffering` middleware and its proxy fail
// to read it, and both answer such a read error with a plain 500 (or 499/502/504, by the error's
// kind) although the fault is the client's. The middleware therefore watches the request body:
// when reading it failed and Traefik then made its own error (>= 500, or 499), the answer is a
// 400 `bad_request` (a 408 `request_timeout` when the body stopped arriving), not a 5xx. A 5xx
// from a request whose body was read whole is left as it is (docs/operations.md).
//
// Interpreted by Traefik's Yaegi at start-up (experimental.localPlugins): standard library only.
package jsonerrors

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
)

// Config is the middleware's dynamic configuration.
type Config struct {
	// BodyLimit names the gateway's request body limit in the 413 message (e.g. "1 MiB").
	BodyLimit string `json:"bodyLimit,omitempty"`
	// AllowedOrigins (comma-separated) are the browser origins the services allow (CORS): a
	// gateway-made error to such an origin gets the CORS headers the services would have
	// sent, so a frontend on another origin can read it and its Retry-After.
	AllowedOrigins string `json:"allowedOrigins,omitempty"`
}

// CreateConfig returns the default configuration.
func CreateConfig() *Config {
	return &Config{}
}

type errorBody struct {
	Detail string `json:"detail"`
	Code   string `json:"code"`
}

// One code and sentence per status Traefik can make; the codes are the services' own
// (taskgate_common.errors) where the meaning is the same.
var known = map[int]errorBody{
	400: {"The gateway could not accept this request", "bad_request"},
	404: {"Nothing is served at this address", "not_found"},
	405: {"This method is not allowed here", "method_not_allowed"},
	408: {"The request body did not arrive in time", "request_timeout"},
	413: {"The request body is larger than the gateway accepts", "payload_too_large"},
	429: {"Too many requests from this address; retry after the number of seconds in Retry-After", "rate_limited"},
	500: {"Internal server error", "internal_error"}, // as the services say it
	502: {"The service behind the gateway failed to answer; try again shortly", "bad_gateway"},
	503: {"The service is unavailable (no healthy instance); try again shortly", "service_unavailable"},
	504: {"The service behind the gateway did not answer in time; try again shortly", "gateway_timeout"},
}

// The 400 for a request body that could not be read (see the package comment).
var malformedBody = errorBody{
	"The request body is malformed or incomplete (invalid chunked encoding, or the connection ended before the body did)",
	"bad_request",
}

// The OAuth 2.0 endpoints answer errors as RFC 6749 §5.2 says, with an `error` member, so that
// OAuth client libraries raise instead of storing the body as a token; the gateway's own errors
// there (edge 429, 413, 502-504) carry it too (docs/decisions.md 29).
var oauthPaths = map[string]bool{"/auth/token": true, "/auth/revoke": true}

func oauthError(status int) string {
	switch {
	case status == http.StatusTooManyRequests:
		return "slow_down"
	case status >= 500:
		return "temporarily_unavailable"
	default:
		return "invalid_request"
	}
}

// withOAuthError adds `error` and `error_description` to a rendered error body.
func withOAuthError(body []byte, status int) []byte {
	var fields map[string]interface{}
	if err := json.Unmarshal(body, &fields); err != nil {
		return body
	}
	fields["error"] = oauthError(status)
	fields["error_description"] = fields["detail"]
	data, err := json.Marshal(fields)
	if err != nil {
		return body
	}
	return data
}

// JSONErrors is the middleware.
type JSONErrors struct {
	next      http.Handler
	bodies    map[int][]byte
	malformed []byte
	origins   map[string]bool
}

// New builds the middleware; every known body is rendered once, here.
func New(_ context.Context, next http.Handler, config *Config, _ string) (http.Handler, error) {
	bodies := make(map[int][]byte, len(known))
	for status, body := range known {
		if status == 413 && config.BodyLimit != "" {
			body.Detail = body.Detail + " (limit: " + config.BodyLimit + ")"
		}
		data, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		bodies[status] = data
	}
	malformed, err := json.Marshal(malformedBody)
	if err != nil {
		return nil, err
	}
	origins := map[string]bool{}
	for _, origin := range strings.Split(config.AllowedOrigins, ",") {
		if origin = strings.TrimSpace(origin); origin != "" {
			origins[origin] = true
		}
	}
	return &JSONErrors{next: next, bodies: bodies, malformed: malformed, origins: origins}, nil
}

func (j *JSONErrors) ServeHTTP(rw http.ResponseWriter, req *http.Request) {
	w := &writer{rw: rw, owner: j, req: req, id: requestID(req.Header)}
	// ContentLength is 0 for a request without a body (Body is http.NoBody), -1 when chunked.
	if req.Body != nil && req.ContentLength != 0 {
		w.body = &bodyReader{rc: req.Body}
		req.Body = w.body
	}
	j.next.ServeHTTP(w, req)
}

// idHeader is X-Request-ID in Go's canonical form (the key net/http stores it under).
const idHeader = "X-Request-Id"

// validID is the services' rule (taskgate_common.request_context); a compiled regexp runs as
// native code, cheaper under Yaegi than an interpreted loop over the characters.
var validID = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,128}$`)

// requestID returns the request's ID and leaves exactly that one value in its headers: the
// caller's first X-Request-ID when it is valid (as the services take the first), else a new one.
func requestID(header http.Header) string {
	values := header[idHeader]
	if len(values) > 0 && validID.MatchString(values[0]) {
		if len(values) > 1 {
			header[idHeader] = values[:1]
		}
		return values[0]
	}
	id := newID()
	header[idHeader] = []string{id}
	return id
}

// newID is 128 random bits in 32 lowercase hex characters, as uuid4().hex in the services.
func newID() string {
	data := make([]byte, 16)
	_, _ = rand.Read(data) // never fails on Go >= 1.24 (it would crash the process instead)
	return hex.EncodeToString(data)
}

// bodyReader passes the request body through and remembers the first read error other than
// io.EOF: the client's framing was wrong (net/http's "malformed chunked encoding", "chunked line
// ends with bare LF", "invalid byte in chunk length", "http chunk length too large",
// io.ErrUnexpectedEOF) or the body stopped arriving (the entry point's readTimeout). The proxy
// may read it on another goroutine (its transport's write loop), hence the lock.
type bodyReader struct {
	rc  io.ReadCloser
	mu  sync.Mutex
	err error
}

func (b *bodyReader) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	if err != nil && err != io.EOF {
		b.mu.Lock()
		if b.err == nil {
			b.err = err
		}
		b.mu.Unlock()
	}
	return n, err
}

func (b *bodyReader) Close() error {
	return b.rc.Close()
}

// failure is the first read error, nil while the body read fine.
func (b *bodyReader) failure() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.err
}

func (j *JSONErrors) body(status int) []byte {
	if data, ok := j.bodies[status]; ok {
		return data
	}
	code := "http_error"
	if status >= 500 {
		code = "gateway_error"
	}
	text := http.StatusText(status)
	if text == "" {
		text = "HTTP error " + strconv.Itoa(status)
	}
	data, _ := json.Marshal(errorBody{Detail: text, Code: code})
	return data
}

// writer passes every response through, except an error without a JSON Content-Type.
type writer struct {
	rw          http.ResponseWriter
	owner       *JSONErrors
	req         *http.Request
	body        *bodyReader // nil for a request without a body
	id          string      // the request's X-Request-ID (see requestID)
	wroteHeader bool
	replaced    bool
	streamed    bool // an event stream: flushed on every write (see Flush)
}

func (w *writer) Header() http.Header {
	return w.rw.Header()
}

func (w *writer) WriteHeader(status int) {
	if w.wroteHeader {
		return
	}
	if status < 200 { // informational (100 Continue, 103 Early Hints): more headers follow
		w.rw.WriteHeader(status)
		return
	}
	w.wroteHeader = true
	header := w.rw.Header()
	// The service echoes the ID it was sent; an answer without it (Traefik's own, or an
	// upstream that does not echo) gets it here, and one that names another ID is corrected,
	// so the answer, the service's log and the access log agree.
	if ids := header[idHeader]; len(ids) != 1 || ids[0] != w.id {
		header[idHeader] = []string{w.id}
	}
	if status < 400 || isJSON(header.Get("Content-Type")) {
		w.streamed = isEventStream(header.Get("Content-Type"))
		w.rw.WriteHeader(status)
		return
	}
	w.replaced = true
	body := w.owner.body(status)
	// Traefik's 500 (499, 502, 504) after the request body could not be read: the client's
	// fault, not the gateway's nor a service's.
	if (status >= 500 || status == 499) && w.body != nil {
		if err := w.body.failure(); err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				status = http.StatusRequestTimeout
				body = w.owner.body(status)
			} else {
				status = http.StatusBadRequest
				body = w.owner.malformed
			}
		}
	}
	if oauthPaths[w.req.URL.Path] {
		body = withOAuthError(body, status)
	}
	header.Set("Content-Type", "application/json")
	header.Set("Content-Length", strconv.Itoa(len(body)))
	header.Del("Content-Encoding")
	origin := w.req.Header.Get("Origin")
	if origin != "" && w.owner.origins[origin] && header.Get("Access-Control-Allow-Origin") == "" {
		header.Set("Access-Control-Allow-Origin", origin)
		header.Set("Access-Control-Allow-Credentials", "true")
		header.Set("Access-Control-Expose-Headers", "Retry-After, X-Retry-In, X-Request-ID")
		header.Add("Vary", "Origin")
	}
	w.rw.WriteHeader(status)
	_, _ = w.rw.Write(body)
}

func (w *writer) Write(data []byte) (int, error) {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if w.replaced {
		return len(data), nil // Traefik's plain-text body: dropped
	}
	n, err := w.rw.Write(data)
	if w.streamed && err == nil {
		w.Flush()
	}
	return n, err
}

// Flush forwards a flush. Traefik's compiled code cannot see this method through Yaegi's
// wrapper (traefik/traefik#10269), so an event stream (text/event-stream, GET /api/events) is
// flushed on every write instead: each event must leave at once. Every other answer is sent as
// Traefik buffers it, compressed ones included (they carry no Content-Length either: flushing
// each of compress's writes cost ~0.15 ms of gateway CPU per gzipped list, decision 69).
func (w *writer) Flush() {
	if flusher, ok := w.rw.(http.Flusher); ok {
		flusher.Flush()
	}
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *writer) Unwrap() http.ResponseWriter {
	return w.rw
}

func isEventStream(contentType string) bool {
	mediaType := strings.ToLower(strings.TrimSpace(strings.SplitN(contentType, ";", 2)[0]))
	return mediaType == "text/event-stream"
}

func isJSON(contentType string) bool {
	mediaType := strings.ToLower(strings.TrimSpace(strings.SplitN(contentType, ";", 2)[0]))
	return mediaType == "application/json" || strings.HasSuffix(mediaType, "+json")
}
