/*
Copyright 2026 The customer-operator Authors.

Licensed under the Apache License, Version 2.0 (the "License");
you may not use this file except in compliance with the License.
You may obtain a copy of the License at

    http://www.apache.org/licenses/LICENSE-2.0

Unless required by applicable law or agreed to in writing, software
distributed under the License is distributed on an "AS IS" BASIS,
WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
See the License for the specific language governing permissions and
limitations under the License.
*/

package generic

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"slices"
	"strconv"
	"sync"
	"unicode/utf8"

	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"

	"github.com/customer-operator/customer-operator/webhookserver/providers"
)

// decodeBody decodes a JSON body into the CEL values the expressions read,
// with integers kept as integers, so that an id of 123 is 123 and not
// 1.23e+02 in CEL.
//
// The body is decoded straight into CEL values: objects are maps of strings
// to CEL values, arrays lists of CEL values. With cost tracking CEL takes the
// CEL value of every step of a field selection, and Go maps and slices would
// be converted again at each step. A string with an escape or a non-ASCII
// byte is decoded by encoding/json, so every string is what encoding/json
// makes of it. A body this decoder does not take (invalid JSON, or deeper
// than encoding/json allows) is decoded by encoding/json, for its error.
func decodeBody(body []byte) (ref.Val, *providers.Error) {
	d := decoders.Get().(*jsonDecoder)
	d.data, d.i = body, 0
	v, ok := d.document()
	d.data = nil
	decoders.Put(d)
	if ok {
		return v, nil
	}
	native, err := decodeSlowly(body)
	if err != nil {
		return nil, err
	}
	return types.DefaultTypeAdapter.NativeToValue(native), nil
}

// decodeSlowly is encoding/json's decoding, numbers decoded as json.Number
// and then as integers where they are.
func decodeSlowly(body []byte) (any, *providers.Error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, providers.JSONError(err, "")
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, providers.Malformed("", "body holds more than one JSON value")
	}
	return numbers(v), nil
}

func numbers(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			x[k] = numbers(e)
		}
	case []any:
		for i, e := range x {
			x[i] = numbers(e)
		}
	case json.Number:
		if n, err := x.Int64(); err == nil {
			return n
		}
		f, _ := x.Float64()
		return f
	}
	return v
}

// maxDepth is encoding/json's limit on nested objects and arrays.
const maxDepth = 10000

// jsonDecoder decodes one JSON value (RFC 8259, as encoding/json reads it).
// Each method returns false on anything it does not take, and the body is
// then left to encoding/json.
type jsonDecoder struct {
	data []byte
	i    int
	// members and elements hold the objects and arrays being decoded, so
	// that each is made once, at its size.
	members  []member
	elements []ref.Val
	// names are the member names this decoder has made, reused by the next
	// bodies: a sender's events repeat their names.
	names map[string]string
}

// A pooled decoder keeps at most maxNames names of at most maxNameLen bytes.
const (
	maxNames   = 512
	maxNameLen = 64
)

type member struct {
	name  string
	value ref.Val
}

// decoders keeps decoders for their members and elements.
var decoders = sync.Pool{New: func() any { return &jsonDecoder{} }}

func (d *jsonDecoder) document() (ref.Val, bool) {
	v, ok := d.value(0)
	if !ok {
		return nil, false
	}
	d.space()
	return v, d.i == len(d.data)
}

func (d *jsonDecoder) space() {
	for d.i < len(d.data) {
		switch d.data[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

// next skips white space and reports whether the next byte is c, taking it.
func (d *jsonDecoder) next(c byte) bool {
	d.space()
	if d.i < len(d.data) && d.data[d.i] == c {
		d.i++
		return true
	}
	return false
}

func (d *jsonDecoder) literal(text string, v ref.Val) (ref.Val, bool) {
	if !bytes.HasPrefix(d.data[d.i:], []byte(text)) {
		return nil, false
	}
	d.i += len(text)
	return v, true
}

func (d *jsonDecoder) value(depth int) (ref.Val, bool) {
	d.space()
	if d.i == len(d.data) {
		return nil, false
	}
	switch d.data[d.i] {
	case '{':
		return d.object(depth + 1)
	case '[':
		return d.array(depth + 1)
	case '"':
		s, ok := d.string()
		return types.String(s), ok
	case 't':
		return d.literal("true", types.True)
	case 'f':
		return d.literal("false", types.False)
	case 'n':
		return d.literal("null", types.NullValue)
	}
	return d.number()
}

func (d *jsonDecoder) object(depth int) (ref.Val, bool) {
	if depth > maxDepth {
		return nil, false
	}
	d.i++ // {
	first := len(d.members)
	defer func() {
		clear(d.members[first:])
		d.members = d.members[:first]
	}()
	if !d.next('}') {
		for {
			d.space()
			if d.i == len(d.data) || d.data[d.i] != '"' {
				return nil, false
			}
			name, ok := d.name()
			if !ok || !d.next(':') {
				return nil, false
			}
			v, ok := d.value(depth)
			if !ok {
				return nil, false
			}
			d.members = append(d.members, member{name: name, value: v})
			if d.next('}') {
				break
			}
			if !d.next(',') {
				return nil, false
			}
		}
	}
	m := make(map[string]any, len(d.members)-first)
	for _, e := range d.members[first:] {
		// A later duplicate replaces an earlier one, as in encoding/json.
		m[e.name] = e.value
	}
	return types.NewStringInterfaceMap(types.DefaultTypeAdapter, m), true
}

func (d *jsonDecoder) array(depth int) (ref.Val, bool) {
	if depth > maxDepth {
		return nil, false
	}
	d.i++ // [
	first := len(d.elements)
	defer func() {
		clear(d.elements[first:])
		d.elements = d.elements[:first]
	}()
	if !d.next(']') {
		for {
			v, ok := d.value(depth)
			if !ok {
				return nil, false
			}
			d.elements = append(d.elements, v)
			if d.next(']') {
				break
			}
			if !d.next(',') {
				return nil, false
			}
		}
	}
	return types.NewRefValList(types.DefaultTypeAdapter, slices.Clone(d.elements[first:])), true
}

// number takes -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?: an integer if
// it is one that fits 64 bits, else a float (±Inf beyond a float's range),
// as numbers makes of a json.Number.
func (d *jsonDecoder) number() (ref.Val, bool) {
	start := d.i
	if d.i < len(d.data) && d.data[d.i] == '-' {
		d.i++
	}
	switch {
	case d.i < len(d.data) && d.data[d.i] == '0':
		d.i++
	case d.digits() == 0:
		return nil, false
	}
	if d.i < len(d.data) && d.data[d.i] == '.' {
		d.i++
		if d.digits() == 0 {
			return nil, false
		}
	}
	if d.i < len(d.data) && (d.data[d.i] == 'e' || d.data[d.i] == 'E') {
		d.i++
		if d.i < len(d.data) && (d.data[d.i] == '+' || d.data[d.i] == '-') {
			d.i++
		}
		if d.digits() == 0 {
			return nil, false
		}
	}
	n := string(d.data[start:d.i])
	if i, err := strconv.ParseInt(n, 10, 64); err == nil {
		return types.Int(i), true
	}
	f, _ := strconv.ParseFloat(n, 64)
	return types.Double(f), true
}

func (d *jsonDecoder) digits() int {
	start := d.i
	for d.i < len(d.data) && '0' <= d.data[d.i] && d.data[d.i] <= '9' {
		d.i++
	}
	return d.i - start
}

// name takes the member name at d.i, as string does, reusing a name made
// before.
func (d *jsonDecoder) name() (string, bool) {
	quoted, plain, ok := d.scan()
	if !ok {
		return "", false
	}
	raw := quoted[1 : len(quoted)-1]
	if !plain || len(raw) > maxNameLen {
		return unquote(quoted, plain)
	}
	if known, found := d.names[string(raw)]; found {
		return known, true
	}
	name := string(raw)
	if d.names == nil {
		d.names = make(map[string]string)
	}
	if len(d.names) < maxNames {
		d.names[name] = name
	}
	return name, true
}

// string takes the string at d.i.
func (d *jsonDecoder) string() (string, bool) {
	quoted, plain, ok := d.scan()
	if !ok {
		return "", false
	}
	return unquote(quoted, plain)
}

// unquote makes a string of plain ASCII as it is, any other by
// encoding/json, for its escapes and its handling of invalid UTF-8.
func unquote(quoted []byte, plain bool) (string, bool) {
	if plain {
		return string(quoted[1 : len(quoted)-1]), true
	}
	var s string
	if err := json.Unmarshal(quoted, &s); err != nil {
		return "", false
	}
	return s, true
}

// scan takes the string at d.i, quotes included, and tells whether it is
// plain ASCII without escapes.
func (d *jsonDecoder) scan() (quoted []byte, plain, ok bool) {
	start := d.i
	d.i++ // "
	plain = true
	for {
		if d.i == len(d.data) {
			return nil, false, false
		}
		c := d.data[d.i]
		switch {
		case c == '"':
			d.i++
			return d.data[start:d.i], plain, true
		case c < ' ':
			return nil, false, false
		case c == '\\':
			plain = false
			d.i++
			if d.i == len(d.data) {
				return nil, false, false
			}
			switch d.data[d.i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				d.i++
			case 'u':
				if d.i+4 >= len(d.data) {
					return nil, false, false
				}
				for _, h := range d.data[d.i+1 : d.i+5] {
					if !('0' <= h && h <= '9' || 'a' <= h && h <= 'f' || 'A' <= h && h <= 'F') {
						return nil, false, false
					}
				}
				d.i += 5
			default:
				return nil, false, false
			}
		default:
			if c >= utf8.RuneSelf {
				plain = false
			}
			d.i++
		}
	}
}
