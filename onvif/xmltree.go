package onvif

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Limits on what a device may send. Cameras' answers are a few kB; anything near these bounds is
// broken or hostile, and parsing must stay cheap on a 128 MB gateway.
const (
	maxBodyBytes = 1 << 20
	maxDepth     = 64
	maxElements  = 20000
)

func tooLarge(limit int64) error {
	if limit%(1<<20) == 0 {
		return fmt.Errorf("answer larger than %d MiB", limit>>20)
	}
	return fmt.Errorf("answer larger than %d bytes", limit)
}

// element is a namespace-tolerant view of an XML element: vendors disagree on prefixes and even
// on namespace URIs, so lookups go by local name only.
type element struct {
	Name     string // local name
	Space    string // namespace URI (or unbound prefix), kept for diagnostics
	Attrs    []xml.Attr
	Text     string
	Children []*element
}

// parseTree parses a whole document into an element tree, bounding depth and element count.
func parseTree(data []byte) (*element, error) {
	if len(data) > maxBodyBytes {
		return nil, tooLarge(maxBodyBytes)
	}
	d := xml.NewDecoder(bytes.NewReader(data))
	// Cameras declare charsets they do not use (utf-16 on a utf-8 body): read bytes as they are.
	d.CharsetReader = func(_ string, r io.Reader) (io.Reader, error) { return r, nil }
	var (
		stack []*element
		root  *element
		count int
	)
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("malformed XML: %w", err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			count++
			if count > maxElements {
				return nil, fmt.Errorf("malformed XML: more than %d elements", maxElements)
			}
			if len(stack) >= maxDepth {
				return nil, fmt.Errorf("malformed XML: nested deeper than %d", maxDepth)
			}
			e := &element{Name: t.Name.Local, Space: t.Name.Space, Attrs: t.Attr}
			if len(stack) == 0 {
				if root != nil {
					return nil, errors.New("malformed XML: more than one root element")
				}
				root = e
			} else {
				p := stack[len(stack)-1]
				p.Children = append(p.Children, e)
			}
			stack = append(stack, e)
		case xml.EndElement:
			if len(stack) == 0 {
				return nil, errors.New("malformed XML: unbalanced end element")
			}
			stack = stack[:len(stack)-1]
		case xml.CharData:
			if len(stack) > 0 {
				e := stack[len(stack)-1]
				if len(e.Children) == 0 || strings.TrimSpace(string(t)) != "" {
					e.Text += string(t)
				}
			}
		}
	}
	if root == nil {
		return nil, errors.New("malformed XML: no root element")
	}
	if len(stack) != 0 {
		return nil, errors.New("malformed XML: unexpected end of document")
	}
	return root, nil
}

// child returns the first direct child with the local name, or nil.
func (e *element) child(name string) *element {
	if e == nil {
		return nil
	}
	for _, c := range e.Children {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// path follows direct children by local names.
func (e *element) path(names ...string) *element {
	for _, n := range names {
		e = e.child(n)
	}
	return e
}

// all returns the direct children with the local name.
func (e *element) all(name string) []*element {
	if e == nil {
		return nil
	}
	var out []*element
	for _, c := range e.Children {
		if c.Name == name {
			out = append(out, c)
		}
	}
	return out
}

// find returns the first descendant (depth first, e excluded) with the local name.
func (e *element) find(name string) *element {
	if e == nil {
		return nil
	}
	for _, c := range e.Children {
		if c.Name == name {
			return c
		}
		if f := c.find(name); f != nil {
			return f
		}
	}
	return nil
}

// findAll returns every descendant with the local name, without descending into matches.
func (e *element) findAll(name string) []*element {
	if e == nil {
		return nil
	}
	var out []*element
	for _, c := range e.Children {
		if c.Name == name {
			out = append(out, c)
			continue
		}
		out = append(out, c.findAll(name)...)
	}
	return out
}

// text returns the trimmed text of e; "" for nil.
func (e *element) text() string {
	if e == nil {
		return ""
	}
	return strings.TrimSpace(e.Text)
}

// attr returns the value of the attribute with the local name.
func (e *element) attr(name string) string {
	if e == nil {
		return ""
	}
	for _, a := range e.Attrs {
		if a.Name.Local == name {
			return strings.TrimSpace(a.Value)
		}
	}
	return ""
}
