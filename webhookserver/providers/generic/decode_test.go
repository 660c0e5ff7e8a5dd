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
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
	"github.com/google/cel-go/common/types/traits"
)

// decoderCases are bodies on which the decoder and encoding/json must agree:
// escapes, invalid UTF-8, numbers at and past the limits, duplicates,
// nesting, and invalid JSON of every kind.
var decoderCases = []string{
	`{}`, `[]`, ` {"a" : [ 1 , 2 ] } `, `"s"`, `1`, `-0`, `0.5`, `-1.5e-3`, `1E+2`, `1e400`, `-1e400`,
	`9223372036854775807`, `9223372036854775808`, `-9223372036854775808`, `-9223372036854775809`, `1.0`,
	`{"a":1,"a":"two"}`, `{"":null}`, `[true,false,null,{"x":[[]]}]`,
	`"\u00e9\ud83d\ude00\n\t\"\\\/\b\f\r"`, `"\ud800"`, `"\udc00x"`, "\"caf\xc3\xa9\"", "\"\xff\xfe\"", "\"\xed\xa0\x80\"",
	`{"k\u0041":"v"}`, "{\"\xff\":1}",
	``, ` `, `{`, `}`, `[`, `[1,]`, `{"a":1,}`, `{"a" 1}`, `{a:1}`, `{"a":}`, `[1 2]`, `01`, `-`, `1.`, `.5`, `1e`, `1e+`,
	`+1`, `0x10`, `NaN`, `tru`, `nulll`, `"abc`, `"\x"`, `"\u12"`, `"\u12g4"`, "\"a\x01\"", `{} {}`, `{}x`, `[1]]`,
	`"\`, "\"\\u", `{"a":1}` + "\x00",
	strings.Repeat("[", maxDepth) + strings.Repeat("]", maxDepth),
	strings.Repeat("[", maxDepth+1) + strings.Repeat("]", maxDepth+1),
	strings.Repeat(`{"a":`, maxDepth) + "1" + strings.Repeat("}", maxDepth),
}

// TestDecoderAgreesWithEncodingJSON: the body the expressions see is what
// encoding/json decodes, value for value and type for type, and a body
// encoding/json refuses is refused with encoding/json's error.
func TestDecoderAgreesWithEncodingJSON(t *testing.T) {
	files, err := filepath.Glob("../../../config/samples/events/*/*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("sample events: %v", err)
	}
	bodies := append([]string{}, decoderCases...)
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		bodies = append(bodies, string(b))
	}
	for _, body := range bodies {
		assertDecodesAsEncodingJSON(t, []byte(body))
	}
}

// FuzzDecoder: on any input, the decoder decodes what encoding/json does.
func FuzzDecoder(f *testing.F) {
	for _, c := range decoderCases[:len(decoderCases)-3] {
		f.Add([]byte(c))
	}
	f.Fuzz(func(t *testing.T, body []byte) { assertDecodesAsEncodingJSON(t, body) })
}

func assertDecodesAsEncodingJSON(t *testing.T, body []byte) {
	t.Helper()
	name := string(body)
	if len(name) > 40 {
		name = name[:40] + "..."
	}
	got, gotErr := decodeBody(body)
	want, wantErr := decodeSlowly(body)
	switch {
	case wantErr != nil && gotErr == nil:
		t.Errorf("%q: decoded, encoding/json refuses it: %v", name, wantErr)
	case wantErr == nil && gotErr != nil:
		t.Errorf("%q: refused (%v), encoding/json decodes it", name, gotErr)
	case wantErr != nil:
		if *gotErr != *wantErr {
			t.Errorf("%q: error %+v, encoding/json's %+v", name, gotErr, wantErr)
		}
	default:
		if d := sameJSON(got, types.DefaultTypeAdapter.NativeToValue(want)); d != "" {
			t.Errorf("%q: %s", name, d)
		}
	}
	// A valid body is decoded without encoding/json, except for deep ones.
	var fast jsonDecoder
	fast.data = body
	if _, ok := fast.document(); !ok && json.Valid(body) && !strings.Contains(string(body), strings.Repeat("[", 100)) &&
		!strings.Contains(string(body), strings.Repeat(`{"a":`, 100)) {
		t.Errorf("%q: valid JSON left to encoding/json", name)
	}
}

// sameJSON compares CEL values by type as well as value: CEL's equality
// holds 1 and 1.0 equal, the decoder must not make one of the other.
func sameJSON(a, b ref.Val) string {
	if a.Type() != b.Type() {
		return "type " + a.Type().TypeName() + ", want " + b.Type().TypeName()
	}
	switch x := a.(type) {
	case traits.Mapper:
		y := b.(traits.Mapper)
		if x.Size() != y.Size() {
			return "map sizes differ"
		}
		for it := y.Iterator(); it.HasNext() == types.True; {
			k := it.Next()
			v, found := x.Find(k)
			if !found {
				return "key " + k.(types.String).Value().(string) + " missing"
			}
			if d := sameJSON(v, y.Get(k)); d != "" {
				return k.(types.String).Value().(string) + ": " + d
			}
		}
		return ""
	case traits.Lister:
		y := b.(traits.Lister)
		if x.Size() != y.Size() {
			return "list sizes differ"
		}
		for i := types.Int(0); i < x.Size().(types.Int); i++ {
			if d := sameJSON(x.Get(i), y.Get(i)); d != "" {
				return d
			}
		}
		return ""
	case types.Double:
		if y := b.(types.Double); x != y && !(math.IsNaN(float64(x)) && math.IsNaN(float64(y))) {
			return "number differs"
		}
		return ""
	}
	if a.Equal(b) != types.True {
		return "value differs"
	}
	return ""
}

// TestDecoderKeepsBoundedNames: the member names a pooled decoder keeps for
// later bodies are bounded in number and length, whatever a sender sends.
func TestDecoderKeepsBoundedNames(t *testing.T) {
	var b strings.Builder
	b.WriteString(`{"` + strings.Repeat("n", maxNameLen+1) + `":1`)
	for i := range 2 * maxNames {
		fmt.Fprintf(&b, `,"k%d":%d`, i, i)
	}
	b.WriteString("}")
	d := jsonDecoder{data: []byte(b.String())}
	v, ok := d.document()
	if !ok {
		t.Fatal("not decoded")
	}
	if n := v.(traits.Sizer).Size(); n != types.Int(2*maxNames+1) {
		t.Errorf("%v members, want %d", n, 2*maxNames+1)
	}
	if len(d.names) > maxNames {
		t.Errorf("%d names kept, at most %d", len(d.names), maxNames)
	}
	for name := range d.names {
		if len(name) > maxNameLen {
			t.Errorf("a name of %d bytes kept", len(name))
		}
	}
}
