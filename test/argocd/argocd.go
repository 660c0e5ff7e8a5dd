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

// Package argocd runs the project's Argo CD health checks as Argo CD runs the
// checks of its argocd-cm: gopher-lua with only the base, table and package
// libraries, the object as the global obj, and one second to answer.
package argocd

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"time"

	lua "github.com/yuin/gopher-lua"
)

// Group is the API group whose kinds have health checks.
const Group = "crm.customer-operator.io"

// Kinds are the kinds with a health check, in the order they are listed.
var Kinds = []string{"Customer", "CustomerSource", "CustomerSink"}

// Dir is config/argocd/resource_customizations, in Argo CD's upstream layout:
// <group>/<Kind>/health.lua beside health_test.yaml and testdata/.
func Dir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "config", "argocd", "resource_customizations")
}

// Script returns a kind's health check.
func Script(kind string) (string, error) {
	b, err := os.ReadFile(filepath.Join(Dir(), Group, kind, "health.lua"))
	if err != nil {
		return "", fmt.Errorf("reading the health check of %s: %w", kind, err)
	}
	return string(b), nil
}

// Health is what a health check returns.
type Health struct {
	Status  string `json:"status"`
	Message string `json:"message"`
}

// Run runs script over obj as Argo CD does for a check from argocd-cm.
func Run(script string, obj map[string]any) (Health, error) {
	l := lua.NewState(lua.Options{SkipOpenLibs: true})
	defer l.Close()
	for _, lib := range []struct {
		name string
		open lua.LGFunction
	}{
		{lua.LoadLibName, lua.OpenPackage},
		{lua.BaseLibName, lua.OpenBase},
		{lua.TabLibName, lua.OpenTable},
	} {
		if err := l.CallByParam(lua.P{Fn: l.NewFunction(lib.open), NRet: 0, Protect: true}, lua.LString(lib.name)); err != nil {
			return Health{}, fmt.Errorf("opening Lua library %q: %w", lib.name, err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	l.SetContext(ctx)
	l.SetGlobal("obj", toLua(l, obj))
	if err := l.DoString(script); err != nil {
		return Health{}, fmt.Errorf("running the health check: %w", err)
	}
	t, ok := l.Get(-1).(*lua.LTable)
	if !ok {
		return Health{}, fmt.Errorf("the health check returned %s, not a table", l.Get(-1).Type())
	}
	h := Health{}
	if s, ok := t.RawGetString("status").(lua.LString); ok {
		h.Status = string(s)
	}
	if s, ok := t.RawGetString("message").(lua.LString); ok {
		h.Message = string(s)
	}
	return h, nil
}

// toLua converts decoded JSON as Argo CD does: objects and arrays become tables,
// numbers LNumber.
func toLua(l *lua.LState, v any) lua.LValue {
	switch v := v.(type) {
	case map[string]any:
		t := l.NewTable()
		for k, e := range v {
			t.RawSetString(k, toLua(l, e))
		}
		return t
	case []any:
		t := l.NewTable()
		for _, e := range v {
			t.Append(toLua(l, e))
		}
		return t
	case string:
		return lua.LString(v)
	case bool:
		return lua.LBool(v)
	case int64:
		return lua.LNumber(v)
	case int32:
		return lua.LNumber(v)
	case int:
		return lua.LNumber(v)
	case float64:
		return lua.LNumber(v)
	case nil:
		return lua.LNil
	default:
		return lua.LString(fmt.Sprint(v))
	}
}
