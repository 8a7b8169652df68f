package web

import (
	"bytes"
	"encoding/json"
	"fmt"
	"html"
	"io/fs"
	"net/http"
	"slices"
	"strconv"
	"strings"
)

// The page speaks Russian and English. Its strings live in one catalogue per language,
// static/i18n/<lang>.json: a flat object of key -> text, where {name} marks a value the page fills
// in. The server renders index.html in the visitor's language, so the first paint is already
// right; app.js loads the same catalogue for what it writes itself and for the language switch.
const (
	defaultLang = "ru"
	langCookie  = "camgate_lang" // set by the page's language switch; not a secret
	// Bounds on the Accept-Language header we read: browsers send a handful of tags.
	maxAcceptLanguage = 1024
	maxLanguageTags   = 32
)

// languages are the catalogues the page ships, the default first.
func languages() []string { return []string{"ru", "en"} }

// catalogue is one language's strings.
type catalogue map[string]string

func loadCatalogue(files fs.FS, lang string) (catalogue, error) {
	b, err := fs.ReadFile(files, "i18n/"+lang+".json")
	if err != nil {
		return nil, fmt.Errorf("catalogue %s: %w", lang, err)
	}
	var c catalogue
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("catalogue %s: %w", lang, err)
	}
	return c, nil
}

// renderPages renders index.html in every language.
func renderPages(files fs.FS) (map[string][]byte, error) {
	src, err := fs.ReadFile(files, "index.html")
	if err != nil {
		return nil, err
	}
	pages := make(map[string][]byte, 2)
	for _, lang := range languages() {
		c, err := loadCatalogue(files, lang)
		if err != nil {
			return nil, err
		}
		page, err := translatePage(src, lang, c)
		if err != nil {
			return nil, fmt.Errorf("index.html in %s: %w", lang, err)
		}
		pages[lang] = page
	}
	return pages, nil
}

// translatePage fills in our own index.html: data-i18n="key" puts the text into the (empty)
// element it opens, data-i18n-<attr>="key" adds attr="text" beside it, and <html lang=""> gets
// the language. It is a string pass over a file we wrote, not an HTML parser: every value is
// escaped, and a key the catalogue lacks is an error (a test keeps the file and catalogues in step).
func translatePage(src []byte, lang string, c catalogue) ([]byte, error) {
	const marker = ` data-i18n`
	var out bytes.Buffer
	rest := string(src)
	if !strings.Contains(rest, `<html lang="">`) {
		return nil, fmt.Errorf(`no <html lang="">`)
	}
	rest = strings.Replace(rest, `<html lang="">`, `<html lang="`+lang+`">`, 1)
	for {
		i := strings.Index(rest, marker)
		if i < 0 {
			out.WriteString(rest)
			return out.Bytes(), nil
		}
		out.WriteString(rest[:i])
		rest = rest[i+len(marker):]
		attr := ""
		if strings.HasPrefix(rest, "-") {
			end := strings.IndexByte(rest, '=')
			if end < 0 {
				return nil, fmt.Errorf("data-i18n attribute without a value")
			}
			attr, rest = rest[1:end], rest[end:]
		}
		key, after, ok := cutQuoted(rest)
		if !ok {
			return nil, fmt.Errorf("data-i18n%s: malformed value", attr)
		}
		text, ok := c[key]
		if !ok {
			return nil, fmt.Errorf("no key %q", key)
		}
		// Keep the attribute, so that the page can switch languages without a reload.
		out.WriteString(marker)
		if attr != "" {
			out.WriteString("-" + attr)
		}
		out.WriteString(`="` + key + `"`)
		rest = after
		if attr != "" {
			out.WriteString(" " + attr + `="` + html.EscapeString(text) + `"`)
			continue
		}
		end := strings.IndexByte(rest, '>')
		if end < 0 {
			return nil, fmt.Errorf("data-i18n=%q: tag not closed", key)
		}
		out.WriteString(rest[:end+1])
		out.WriteString(html.EscapeString(text))
		rest = rest[end+1:]
	}
}

// cutQuoted reads `="value"` from the start of s.
func cutQuoted(s string) (value, rest string, ok bool) {
	s, ok = strings.CutPrefix(s, `="`)
	if !ok {
		return "", "", false
	}
	end := strings.IndexByte(s, '"')
	if end < 0 {
		return "", "", false
	}
	return s[:end], s[end+1:], true
}

// pageLanguage picks the page's language: the page's own switch (its cookie) first, then the
// browser's Accept-Language, else Russian.
func pageLanguage(r *http.Request) string {
	if c, err := r.Cookie(langCookie); err == nil && slices.Contains(languages(), c.Value) {
		return c.Value
	}
	return negotiateLanguage(r.Header.Get("Accept-Language"))
}

// negotiateLanguage returns the language of the catalogues that the Accept-Language header
// (RFC 9110 §12.5.4) prefers: the highest q, earlier tags winning ties, matched by primary subtag
// ("ru-RU" is ru). It returns defaultLang when the header names none of them, and reads at most
// maxAcceptLanguage bytes and maxLanguageTags tags of it.
func negotiateLanguage(header string) string {
	if len(header) > maxAcceptLanguage {
		header = header[:maxAcceptLanguage]
	}
	best, bestQ := defaultLang, 0.0
	for n, part := range strings.Split(header, ",") {
		if n == maxLanguageTags {
			break
		}
		tag, params, _ := strings.Cut(part, ";")
		tag = strings.ToLower(strings.TrimSpace(tag))
		primary, _, _ := strings.Cut(tag, "-")
		q := 1.0
		for p := range strings.SplitSeq(params, ";") {
			name, v, ok := strings.Cut(strings.TrimSpace(p), "=")
			if ok && strings.EqualFold(strings.TrimSpace(name), "q") {
				f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
				if err != nil || f < 0 || f > 1 {
					f = 0 // a q we cannot read does not count as a preference
				}
				q = f
			}
		}
		if q > bestQ && slices.Contains(languages(), primary) {
			best, bestQ = primary, q
		}
	}
	return best
}

// index serves index.html in the visitor's language.
func (s *Server) index(w http.ResponseWriter, r *http.Request) {
	lang := pageLanguage(r)
	page := s.pages[lang]
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Language", lang)
	h.Set("Vary", "Accept-Language, Cookie")
	h.Set("Cache-Control", "no-cache")
	h.Set("Content-Length", strconv.Itoa(len(page)))
	if r.Method == http.MethodHead {
		return
	}
	_, _ = w.Write(page) // a client gone hears nothing
}
