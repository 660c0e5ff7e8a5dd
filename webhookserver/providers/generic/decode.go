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
	"strconv"
	"unicode/utf8"

	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"

	"github.com/customer-operator/customer-operator/webhookserver/providers"
)

// decodeBody decodes a JSON body into the CEL values the expressions read,
// with integers kept as integers, so that an id of 123 is 123 and not
// 1.23e+02 in CEL.
//
// A valid body (encoding/json's json.Valid) is decoded straight into CEL
// values: objects are maps of strings to CEL values, arrays lists of CEL
// values. With cost tracking CEL takes the CEL value of every step of a
// field selection, and Go maps and slices would be converted again at each
// step. Strings with an escape or a non-ASCII byte are decoded by
// encoding/json, so every string is what encoding/json makes of it. An
// invalid body is decoded by encoding/json for its error.
func decodeBody(body []byte) (ref.Val, *providers.Error) {
	if !json.Valid(body) {
		v, err := decodeSlowly(body)
		if err != nil {
			return nil, err
		}
		return types.DefaultTypeAdapter.NativeToValue(v), nil
	}
	d := jsonDecoder{data: body}
	return d.value(), nil
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

// jsonDecoder decodes JSON that json.Valid accepted: it checks no syntax.
type jsonDecoder struct {
	data []byte
	i    int
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

func (d *jsonDecoder) value() ref.Val {
	d.space()
	switch d.data[d.i] {
	case '{':
		d.i++
		m := make(map[string]any)
		for {
			d.space()
			switch d.data[d.i] {
			case '}':
				d.i++
				return types.NewStringInterfaceMap(types.DefaultTypeAdapter, m)
			case ',':
				d.i++
				d.space()
			}
			k := d.string()
			d.space()
			d.i++ // ':'
			// A later duplicate replaces an earlier one, as in encoding/json.
			m[k] = d.value()
			d.space()
		}
	case '[':
		d.i++
		l := []ref.Val{}
		for {
			d.space()
			switch d.data[d.i] {
			case ']':
				d.i++
				return types.NewRefValList(types.DefaultTypeAdapter, l)
			case ',':
				d.i++
			}
			l = append(l, d.value())
		}
	case '"':
		return types.String(d.string())
	case 't':
		d.i += len("true")
		return types.True
	case 'f':
		d.i += len("false")
		return types.False
	case 'n':
		d.i += len("null")
		return types.NullValue
	}
	start := d.i
	for d.i < len(d.data) && isNumberByte(d.data[d.i]) {
		d.i++
	}
	// An integer if it is one that fits 64 bits, else a float (±Inf beyond a
	// float's range), as numbers makes of a json.Number.
	n := string(d.data[start:d.i])
	if i, err := strconv.ParseInt(n, 10, 64); err == nil {
		return types.Int(i)
	}
	f, _ := strconv.ParseFloat(n, 64)
	return types.Double(f)
}

func isNumberByte(c byte) bool {
	return '0' <= c && c <= '9' || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E'
}

// string decodes the string at d.i: one of plain ASCII as it is, any other
// by encoding/json, for its escapes and its handling of invalid UTF-8.
func (d *jsonDecoder) string() string {
	start := d.i
	d.i++
	plain := true
	for d.data[d.i] != '"' {
		c := d.data[d.i]
		switch {
		case c == '\\':
			plain = false
			d.i += 2
			continue
		case c >= utf8.RuneSelf:
			plain = false
		}
		d.i++
	}
	d.i++
	quoted := d.data[start:d.i]
	if plain {
		return string(quoted[1 : len(quoted)-1])
	}
	var s string
	// Cannot fail: json.Valid accepted the body, and so the string.
	_ = json.Unmarshal(quoted, &s)
	return s
}
