package onvifdev

import (
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"
)

// request is what the simulated device needs from a SOAP request: the operation and the text of
// leaf elements by local name (first occurrence), which is enough for the calls it serves.
type request struct {
	op    string
	ns    string
	text  map[string]string
	attrs map[string][]xml.Attr
}

func (r *request) get(name string) string { return strings.TrimSpace(r.text[name]) }

func (r *request) attr(elem, name string) string {
	for _, a := range r.attrs[elem] {
		if a.Name.Local == name {
			return a.Value
		}
	}
	return ""
}

func readRequest(body io.Reader) (*request, error) {
	d := xml.NewDecoder(body)
	req := &request{text: map[string]string{}, attrs: map[string][]xml.Attr{}}
	var (
		stack  []string
		inBody bool
		depth  int
	)
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("malformed request: %w", err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			depth++
			if depth > 32 {
				return nil, errors.New("malformed request: too deep")
			}
			stack = append(stack, t.Name.Local)
			if inBody && req.op == "" {
				req.op, req.ns = t.Name.Local, t.Name.Space
			}
			if t.Name.Local == "Body" && depth == 2 {
				inBody = true
			}
			if _, ok := req.attrs[t.Name.Local]; !ok {
				req.attrs[t.Name.Local] = t.Attr
			}
		case xml.EndElement:
			depth--
			if len(stack) > 0 {
				stack = stack[:len(stack)-1]
			}
		case xml.CharData:
			if len(stack) > 0 {
				name := stack[len(stack)-1]
				if _, ok := req.text[name]; !ok && strings.TrimSpace(string(t)) != "" {
					req.text[name] = string(t)
				}
			}
		}
	}
	if req.op == "" {
		return nil, errors.New("no operation in SOAP body")
	}
	return req, nil
}
