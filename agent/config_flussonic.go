package agent

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strings"
)

// streamNamePlaceholder marks where flussonic.publish takes the stream name (SPEC §2).
const streamNamePlaceholder = "{stream_name}"

// validate checks the flussonic block: every publish form is tried at config time, so a URL
// that cannot work stops camgate with exit 2 instead of becoming a reconnect loop.
func (f *FlussonicConfig) validate() error {
	bad := func(key, format string, args ...any) error {
		return &ConfigError{Key: "flussonic." + key, Reason: fmt.Sprintf(format, args...)}
	}
	if f.Publish != "" {
		if err := checkPublish(f.Publish); err != nil {
			return bad("publish", "%v", err)
		}
	}
	if f.Play != "" {
		u, err := url.Parse(f.Play)
		switch {
		case err != nil:
			return bad("play", "not a URL: %v", unwrapURLError(err))
		case u.Scheme != "rtsp" && u.Scheme != "rtsps":
			return bad("play", "scheme must be rtsp or rtsps (what SC's \"add camera by parameters\" form plays)")
		case u.Host == "":
			return bad("play", "has no host")
		case u.User != nil || u.RawQuery != "":
			return bad("play", "must be a plain base URL such as rtsp://host:554/ (no user:password@, no query)")
		}
	}
	if !strings.Contains(f.StreamName, "{camera_id}") {
		return bad("stream_name", "must contain {camera_id}, or every camera would publish to the same stream")
	}
	if f.API.URL != "" {
		u, err := url.Parse(f.API.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return bad("api.url", "must be an http:// or https:// URL such as http://host/streamer/api/v3, not %q", f.API.URL)
		}
		if u.User != nil {
			return bad("api.url", "put credentials in api.username and api.password, not in the URL")
		}
		if f.Publish == "" {
			return bad("api.url", "needs flussonic.publish: the streams it creates take that publish")
		}
	} else if f.API.Username != "" || f.API.Password != "" {
		return bad("api.url", "must be set when api.username or api.password is")
	}
	for i, s := range f.Events {
		key := fmt.Sprintf("events[%d]", i)
		u, err := url.Parse(s.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return bad(key+".url", "must be an http:// or https:// URL, not %q", s.URL)
		}
		switch s.Format {
		case FormatEventSink, FormatEpisodes:
		default:
			return bad(key+".format", "must be event_sink or episodes, not %q", s.Format)
		}
		for name, value := range s.Headers {
			if !httpToken.MatchString(name) {
				return bad(key+".headers", "%q is not an HTTP header name", name)
			}
			if _, err := expandEnv(value, os.LookupEnv); err != nil {
				return bad(key+".headers."+name, "%v", err)
			}
		}
	}
	return nil
}

// httpToken is RFC 9110's token, the grammar of a header name.
var httpToken = regexp.MustCompile("^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")

var envRef = regexp.MustCompile(`\$\{([^}]*)\}`)

var envVarName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// expandEnv fills ${NAME} references from the environment. A reference to an unset variable is
// an error: a header sent without its API key would be refused by the receiver, forever.
func expandEnv(value string, lookup func(string) (string, bool)) (string, error) {
	var err error
	out := envRef.ReplaceAllStringFunc(value, func(ref string) string {
		name := ref[2 : len(ref)-1]
		if !envVarName.MatchString(name) {
			err = fmt.Errorf("%q is not an environment variable name", name)
			return ""
		}
		v, ok := lookup(name)
		if !ok {
			err = fmt.Errorf("environment variable %s is not set", name)
		}
		return v
	})
	if err == nil && strings.ContainsAny(out, "\r\n") {
		err = errors.New("must not contain a line break")
	}
	return out, err
}

// SinkHeaders is the i-th event sink's headers with ${NAME} filled from the environment.
func (c *Config) SinkHeaders(i int) (http.Header, error) {
	h := http.Header{}
	for name, value := range c.Flussonic.Events[i].Headers {
		v, err := expandEnv(value, os.LookupEnv)
		if err != nil {
			return nil, fmt.Errorf("flussonic.events[%d].headers.%s: %w", i, name, err)
		}
		h.Set(name, v)
	}
	return h, nil
}

// SinkServer is the "server" the i-th sink's events carry: its own, else the publish host.
func (c *Config) SinkServer(i int) string {
	if s := c.Flussonic.Events[i].Server; s != "" {
		return s
	}
	u, err := url.Parse(c.Flussonic.Publish)
	if err != nil {
		return ""
	}
	return u.Hostname()
}

// checkPublish refuses a flussonic.publish no stream could be published to. The forms follow
// Flussonic's "Publishing video to the server" page
// (https://flussonic.com/doc/live-streaming/publishing-video-to-the-server/): rtsp://host/NAME,
// rtmp://host/NAME, rtmp://host/static/NAME, rtmp://host/APP/NAME, with the stream's publish
// password as ?password=… (its "Authorization for stream publishing").
func checkPublish(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("not a URL: %w", unwrapURLError(err))
	}
	switch u.Scheme {
	case "rtsp", "rtsps", "rtmp", "rtmps":
	default:
		return errors.New("scheme must be rtsp, rtsps, rtmp or rtmps")
	}
	if u.Host == "" {
		return errors.New("has no host")
	}
	if n := strings.Count(raw, streamNamePlaceholder); n > 1 {
		return errors.New("has {stream_name} more than once")
	}
	if strings.Contains(u.Host, streamNamePlaceholder) ||
		strings.Contains(u.RawQuery, url.QueryEscape(streamNamePlaceholder)) ||
		strings.Contains(u.RawQuery, streamNamePlaceholder) || strings.Contains(u.Fragment, streamNamePlaceholder) {
		return errors.New("{stream_name} must be in the path, where Flussonic reads the stream name")
	}
	if u.Fragment != "" {
		return errors.New("must not have a #fragment")
	}
	if strings.HasPrefix(u.Scheme, "rtmp") && u.User != nil {
		return errors.New("RTMP has no user:password@; Flussonic checks a stream's publish password as ?password=…")
	}
	if _, err := url.ParseQuery(u.RawQuery); err != nil {
		return fmt.Errorf("query: %w", err)
	}
	if _, err := publishURL(raw, "probe"); err != nil {
		return err
	}
	return nil
}

// publishURL puts name in place of {stream_name}, or appends it to the path; the query stays.
func publishURL(raw, name string) (string, error) {
	escaped := escapeStreamName(name)
	if strings.Contains(raw, streamNamePlaceholder) {
		out := strings.Replace(raw, streamNamePlaceholder, escaped, 1)
		if _, err := url.Parse(out); err != nil {
			return "", fmt.Errorf("not a URL once the stream name is in place: %w", unwrapURLError(err))
		}
		return out, nil
	}
	base, query, hasQuery := strings.Cut(raw, "?")
	out := strings.TrimSuffix(base, "/") + "/" + escaped
	if hasQuery {
		out += "?" + query
	}
	if _, err := url.Parse(out); err != nil {
		return "", fmt.Errorf("not a URL once the stream name is in place: %w", unwrapURLError(err))
	}
	return out, nil
}

// escapeStreamName escapes each segment of a stream name; a '/' stays, since Flussonic stream
// names may have one (client15/published1 in its publishing page).
func escapeStreamName(name string) string {
	segs := strings.Split(name, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return strings.Join(segs, "/")
}

// checkStreamName refuses names Flussonic could not take as a stream name in a URL path.
func checkStreamName(name string) error {
	switch {
	case len(name) > 128:
		return errors.New("must be at most 128 characters")
	case strings.HasPrefix(name, "/") || strings.HasSuffix(name, "/") || strings.Contains(name, "//"):
		return fmt.Errorf("%q: no leading, trailing or double '/'", name)
	case strings.ContainsAny(name, "?#%{} \t\r\n\\"):
		return fmt.Errorf("%q: no spaces, braces or any of ? # %% \\", name)
	}
	return nil
}
