package web

import (
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

func staticFS(t *testing.T) fs.FS {
	t.Helper()
	static, err := fs.Sub(staticFiles, "static")
	if err != nil {
		t.Fatal(err)
	}
	return static
}

func catalogues(t *testing.T) map[string]catalogue {
	t.Helper()
	out := map[string]catalogue{}
	for _, lang := range languages() {
		c, err := loadCatalogue(staticFS(t), lang)
		if err != nil {
			t.Fatal(err)
		}
		out[lang] = c
	}
	return out
}

var placeholder = regexp.MustCompile(`\{\w+\}`)

// Every key is in every catalogue, with words, and with the same {placeholders}: a translation
// that drops {name} would show a message without the camera's name.
func TestCataloguesHaveTheSameKeys(t *testing.T) {
	cats := catalogues(t)
	ref := cats[defaultLang]
	for lang, c := range cats {
		for key, v := range c {
			if strings.TrimSpace(v) == "" {
				t.Errorf("%s.json: %q is empty", lang, key)
			}
			other, ok := ref[key]
			if !ok {
				t.Errorf("%s.json has %q, %s.json does not", lang, key, defaultLang)
				continue
			}
			a, b := placeholder.FindAllString(v, -1), placeholder.FindAllString(other, -1)
			slices.Sort(a)
			slices.Sort(b)
			if !slices.Equal(a, b) {
				t.Errorf("%q: %s.json fills in %v, %s.json %v", key, lang, a, defaultLang, b)
			}
		}
		for key := range ref {
			if _, ok := c[key]; !ok {
				t.Errorf("%s.json lacks %q", lang, key)
			}
		}
	}
}

// keyUse finds the catalogue keys the page names: data-i18n attributes in index.html, and in
// app.js every string literal that looks like a key (t("cam.copy"), a map's "link.up").
var (
	htmlKeyUse = regexp.MustCompile(`data-i18n(?:-[a-z-]+)?="([^"]*)"`)
	jsKeyUse   = regexp.MustCompile(`"((?:lang|login|status|link|cams|cam|add|form|conn|wifi|err|field)\.[\w.\[\]]+)"`)
)

// The page uses only keys that exist, so no visitor ever sees a bare key.
func TestPageUsesOnlyCatalogueKeys(t *testing.T) {
	cats := catalogues(t)
	for file, re := range map[string]*regexp.Regexp{"index.html": htmlKeyUse, "app.js": jsKeyUse} {
		src, err := fs.ReadFile(staticFS(t), file)
		if err != nil {
			t.Fatal(err)
		}
		uses := re.FindAllStringSubmatch(string(src), -1)
		if len(uses) < 20 {
			t.Fatalf("%s names only %d catalogue keys: is the pattern still right?", file, len(uses))
		}
		for _, m := range uses {
			for lang, c := range cats {
				if _, ok := c[m[1]]; !ok {
					t.Errorf("%s uses %q, which %s.json lacks", file, m[1], lang)
				}
			}
		}
	}
}

// errorCodes lists the ErrorCode constants declared in this package's sources.
func errorCodes(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	var codes []string
	fset := token.NewFileSet()
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range f.Decls {
			gd, ok := d.(*ast.GenDecl)
			if !ok || gd.Tok != token.CONST {
				continue
			}
			for _, spec := range gd.Specs {
				vs := spec.(*ast.ValueSpec)
				if id, ok := vs.Type.(*ast.Ident); !ok || id.Name != "ErrorCode" {
					continue
				}
				for _, v := range vs.Values {
					if lit, ok := v.(*ast.BasicLit); ok {
						s, _ := strconv.Unquote(lit.Value)
						codes = append(codes, s)
					}
				}
			}
		}
	}
	return codes
}

// Every error code the API can answer has words in every catalogue and a line in API.md.
func TestEveryErrorCodeHasWordsAndDocumentation(t *testing.T) {
	codes := errorCodes(t)
	if len(codes) < 20 {
		t.Fatalf("found only %d error codes", len(codes))
	}
	doc, err := os.ReadFile("API.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, code := range codes {
		for lang, c := range catalogues(t) {
			if _, ok := c["err."+code]; !ok {
				t.Errorf("error code %s has no err.%s in %s.json", code, code, lang)
			}
		}
		if !strings.Contains(string(doc), "`"+code+"`") {
			t.Errorf("error code %s is not in API.md", code)
		}
	}
}

func TestNegotiateLanguage(t *testing.T) {
	for _, tc := range []struct{ header, want string }{
		{"", "ru"},
		{"ru-RU,ru;q=0.9,en-US;q=0.8,en;q=0.7", "ru"},
		{"en-US,en;q=0.9", "en"},
		{"EN-gb", "en"},
		{"de-DE,de;q=0.9", "ru"},                  // neither: the default
		{"de-DE,en;q=0.5,ru;q=0.4", "en"},         // the best of ours
		{"ru;q=0.3, en;q=0.8", "en"},              // q, not order, decides
		{"en;q=0.5, ru;q=0.5", "en"},              // a tie: the earlier tag
		{"en;q=0", "ru"},                          // q=0 means "not this"
		{"en;q=abc", "ru"},                        // an unreadable q is no preference
		{"en;q=7", "ru"},                          // nor one out of range
		{"*", "ru"},                               // anything: the default
		{"uk-UA, ru-RU;q=0.8", "ru"},              // Ukrainian first, but we have Russian
		{strings.Repeat("x,", 40) + "en", "ru"},   // past the tag bound
		{strings.Repeat(" ", 2000) + ",en", "ru"}, // past the byte bound
	} {
		if got := negotiateLanguage(tc.header); got != tc.want {
			t.Errorf("Accept-Language %q: %s, want %s", tc.header, got, tc.want)
		}
	}
}

func FuzzNegotiateLanguage(f *testing.F) {
	f.Add("ru-RU,ru;q=0.9,en-US;q=0.8")
	f.Add("en;q=0.5,,;q=;=,ru;q=1e400")
	f.Fuzz(func(t *testing.T, header string) {
		if got := negotiateLanguage(header); !slices.Contains(languages(), got) {
			t.Fatalf("%q: %q is not a language of ours", header, got)
		}
	})
}

// The server renders the page in the visitor's language, so even the first paint is right;
// the page's own switch (its cookie) wins over the browser's setting.
func TestPageComesInTheVisitorsLanguage(t *testing.T) {
	s, _ := newTestServer(t, newFakeBackend())
	c := newClient(t, s)
	cats := catalogues(t)
	for _, tc := range []struct {
		path, acceptLanguage, cookie, want string
	}{
		{"/", "ru-RU,ru;q=0.9", "", "ru"},
		{"/", "en-US,en;q=0.9", "", "en"},
		{"/", "", "", "ru"},
		{"/index.html", "en", "", "en"},
		{"/", "en-US", "ru", "ru"},
		{"/", "ru-RU", "en", "en"},
		{"/", "ru-RU", "fr", "ru"}, // a cookie we do not know is ignored
	} {
		headers := []string{"Accept-Language", tc.acceptLanguage}
		if tc.cookie != "" {
			headers = append(headers, "Cookie", langCookie+"="+tc.cookie)
		}
		w := c.do("GET", tc.path, nil, headers...)
		mustStatus(t, w, http.StatusOK)
		body := w.Body.String()
		if !strings.Contains(body, `<html lang="`+tc.want+`">`) {
			t.Errorf("%s %q cookie %q: not marked lang=%s", tc.path, tc.acceptLanguage, tc.cookie, tc.want)
		}
		if got := w.Header().Get("Content-Language"); got != tc.want {
			t.Errorf("Content-Language %q, want %s", got, tc.want)
		}
		if !strings.Contains(w.Header().Get("Vary"), "Accept-Language") {
			t.Errorf("Vary %q does not name Accept-Language", w.Header().Get("Vary"))
		}
		for _, key := range []string{"login.title", "status.title", "wifi.open"} {
			if want := cats[tc.want][key]; !strings.Contains(body, ">"+want+"<") {
				t.Errorf("%s page lacks %s = %q", tc.want, key, want)
			}
		}
		if want := `placeholder="` + cats[tc.want]["add.name_example"] + `"`; !strings.Contains(body, want) {
			t.Errorf("%s page lacks %s", tc.want, want)
		}
	}
}

func TestTranslatePageEscapesAndRefusesUnknownKeys(t *testing.T) {
	src := []byte(`<html lang=""><p data-i18n="a"></p><input data-i18n-placeholder="b">`)
	got, err := translatePage(src, "en", catalogue{"a": `<b>&"`, "b": `say "hi"`})
	if err != nil {
		t.Fatal(err)
	}
	want := `<html lang="en"><p data-i18n="a">&lt;b&gt;&amp;&#34;</p>` +
		`<input data-i18n-placeholder="b" placeholder="say &#34;hi&#34;">`
	if string(got) != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	if _, err := translatePage(src, "en", catalogue{"a": "x"}); err == nil {
		t.Error("a key the catalogue lacks was accepted")
	}
}

// Every API error carries a stable code beside its English message, and a field error names
// the field, so the page can say it in its own language.
func TestAPIErrorsCarryStableCodes(t *testing.T) {
	s, _ := newTestServer(t, newFakeBackend())
	anon := newClient(t, s)
	c := newClient(t, s)
	c.login(testCode)
	fb := newFakeBackend()
	fb.testErr = true
	sErr, _ := newTestServer(t, fb)
	cErr := newClient(t, sErr)
	cErr.login(testCode)

	for _, tc := range []struct {
		name       string
		c          *client
		method     string
		path       string
		body       any
		status     int
		code       ErrorCode
		field      string
		headerPair []string
	}{
		{"wrong setup code", anon, "POST", "/api/login", map[string]string{"code": "0000-0000"},
			401, CodeWrongSetupCode, "", nil},
		{"no session", anon, "GET", "/api/status", nil, 401, CodeLoginRequired, "", nil},
		{"no CSRF token", c, "POST", "/api/discover", nil, 403, CodeCSRFToken, "", []string{csrfHeader, ""}},
		{"not JSON", c, "POST", "/api/cameras", "{", 400, CodeBadBody, "", nil},
		{"not JSON typed", c, "POST", "/api/cameras", `{}`,
			415, CodeUnsupportedMediaType, "", []string{"Content-Type", "text/plain"}},
		{"camera or URL", c, "POST", "/api/cameras", map[string]string{}, 400, CodeCameraOrURL, "", nil},
		{"bad scheme", c, "POST", "/api/cameras", map[string]string{"url": "ftp://10.0.0.1/"},
			400, CodeBadScheme, "url", nil},
		{"control character", c, "POST", "/api/cameras", map[string]string{"url": "rtsp://10.0.0.1/", "name": "a\x01"},
			400, CodeBadText, "name", nil},
		{"empty name", c, "PATCH", "/api/cameras/porch", map[string]string{"name": " "}, 400, CodeRequired, "name", nil},
		{"no such camera", c, "DELETE", "/api/cameras/nope", nil, 404, CodeNotFound, "", nil},
		{"no such endpoint", c, "GET", "/api/nope", nil, 404, CodeNoSuchEndpoint, "", nil},
		{"wildcard", c, "PUT", "/api/connection",
			map[string]any{"mqtt": map[string]string{"url": "mqtt://10.0.0.1", "topic_prefix": "a/#"}},
			400, CodeTopicWildcard, "mqtt.topic_prefix", nil},
		{"sink URL", c, "PUT", "/api/connection", map[string]any{"flussonic": map[string]any{"publish": "rtsp://10.0.0.1/",
			"events": []map[string]string{{"url": "ftp://x"}}}}, 400, CodeBadURL, "flussonic.events[0].url", nil},
		{"WPA password", c, "GET", "/api/wifi-qr.png?ssid=home&password=short", nil,
			400, CodeWiFiWPAPassword, "password", nil},
		{"camera refused the password", c, "POST", "/api/test-stream",
			map[string]string{"url": "rtsp://10.0.0.1/", "password": "refused"}, 422, CodeCameraUnauthorized, "", nil},
		{"camera failed", cErr, "POST", "/api/test-stream",
			map[string]string{"url": "rtsp://10.0.0.1/", "password": "pw"}, 422, CodeStreamFailed, "", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := tc.c.do(tc.method, tc.path, tc.body, tc.headerPair...)
			mustStatus(t, w, tc.status)
			var reply errorReply
			if err := json.Unmarshal(w.Body.Bytes(), &reply); err != nil {
				t.Fatal(err)
			}
			if reply.Code != tc.code || reply.Field != tc.field || reply.Error == "" {
				t.Errorf("got %+v, want code %s, field %q and a message", reply, tc.code, tc.field)
			}
		})
	}
}
