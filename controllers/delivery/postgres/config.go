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

package postgres

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	crmv1alpha1 "github.com/customer-operator/customer-operator/api/v1alpha1"
	"github.com/customer-operator/customer-operator/controllers/delivery"
)

// Keys of a PostgreSQL sink's Secret.
const (
	KeyDSN      = "dsn"
	KeyHost     = "host"
	KeyPort     = "port"
	KeyDatabase = "database"
	KeyUser     = "user"
	KeyPassword = "password"
	KeySSLMode  = "sslmode"
	KeyCA       = delivery.KeyCA
)

// SSL modes, as libpq names them; "allow" and "prefer" are left out because they
// fall back to plain text without saying so.
const (
	SSLDisable    = "disable"
	SSLRequire    = "require"
	SSLVerifyCA   = "verify-ca"
	SSLVerifyFull = "verify-full"
)

// Defaults and bounds of the spec's postgres block (the CRD sets the same).
const (
	DefaultSchema   = "public"
	DefaultTable    = "customers"
	DefaultMaxConns = 4
	MaxMaxConns     = 16
	defaultPort     = 5432
)

// Config is a PostgreSQL sink resolved from its CustomerSink and Secret: what New
// needs, with no Kubernetes types.
type Config struct {
	Host     string
	Port     uint16
	Database string
	User     string
	Password string
	// SSLMode is one of SSLDisable, SSLRequire, SSLVerifyCA, SSLVerifyFull.
	SSLMode string
	// CA is an optional PEM bundle; with it, SSLRequire verifies the chain as
	// SSLVerifyCA does (libpq's rule), and the system roots are not used.
	CA []byte
	// ApplicationName is shown in pg_stat_activity.
	ApplicationName string

	Schema, Table string
	MaxConns      int32
	// Fields, when not nil, are the Customer spec fields written (with
	// delivery.IdentityFields); nil writes every field.
	Fields []crmv1alpha1.CustomerField
	// Timeout bounds one delivery.
	Timeout time.Duration
}

// Address is the host:port the sink connects to, for the address policy.
func (c Config) Address() string {
	return net.JoinHostPort(c.Host, strconv.Itoa(int(c.Port)))
}

// ConfigFromSink checks a postgres CustomerSink and its Secret's data and resolves
// them into a Config. Errors name the field or key at fault, never a value from
// the Secret.
func ConfigFromSink(sink *crmv1alpha1.CustomerSink, secret map[string][]byte) (Config, error) {
	if sink == nil {
		return Config{}, delivery.ErrNoSink
	}
	spec := &sink.Spec
	if spec.Postgres == nil {
		return Config{}, delivery.SpecError("postgres", "is required when type is postgres")
	}
	cfg := Config{
		Schema: spec.Postgres.Schema, Table: spec.Postgres.Table, MaxConns: spec.Postgres.MaxConns,
		Fields: spec.Fields, Timeout: delivery.DefaultTimeout,
		ApplicationName: "customer-operator",
	}
	if cfg.Schema == "" {
		cfg.Schema = DefaultSchema
	}
	if cfg.Table == "" {
		cfg.Table = DefaultTable
	}
	if !validIdentifier(cfg.Schema) {
		return Config{}, delivery.SpecError("postgres.schema", "%q is not a lower-case identifier of at most 63 characters", cfg.Schema)
	}
	if !validIdentifier(cfg.Table) {
		return Config{}, delivery.SpecError("postgres.table", "%q is not a lower-case identifier of at most 63 characters", cfg.Table)
	}
	switch {
	case cfg.MaxConns == 0:
		cfg.MaxConns = DefaultMaxConns
	case cfg.MaxConns < 1 || cfg.MaxConns > MaxMaxConns:
		return Config{}, delivery.SpecError("postgres.maxConns", "must be from 1 to %d", MaxMaxConns)
	}
	if spec.Timeout != nil && spec.Timeout.Duration > 0 {
		cfg.Timeout = min(spec.Timeout.Duration, delivery.MaxTimeout)
	}
	if spec.SecretRef == nil {
		return Config{}, delivery.SpecError("secretRef", "is required when type is postgres: it holds the connection")
	}
	if err := cfg.fromSecret(secret); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

func (c *Config) fromSecret(secret map[string][]byte) error {
	params := map[string]string{}
	if dsn, ok := secret[KeyDSN]; ok {
		for _, k := range []string{KeyHost, KeyPort, KeyDatabase, KeyUser, KeyPassword} {
			if _, both := secret[k]; both {
				return delivery.SecretError(k, "is not allowed together with %q: the DSN holds the connection", KeyDSN)
			}
		}
		var err error
		if params, err = parseDSN(string(dsn)); err != nil {
			return delivery.SecretError(KeyDSN, "%v", err)
		}
	} else {
		if _, ok := secret[KeyHost]; !ok {
			return delivery.SecretError(KeyHost, "is missing: the Secret needs %q, or %q with %q and %q", KeyDSN, KeyHost, KeyUser, KeyPassword)
		}
		for _, k := range []string{KeyHost, KeyPort, KeyDatabase, KeyUser, KeyPassword} {
			if v, ok := secret[k]; ok {
				params[k] = strings.TrimSpace(string(v))
				if k == KeyPassword {
					params[k] = string(v) // a password may end in a space
				}
			}
		}
	}
	if v, ok := secret[KeySSLMode]; ok {
		params["sslmode"] = strings.TrimSpace(string(v))
	}

	c.Host = params[KeyHost]
	if c.Host == "" {
		return delivery.SecretError(keyOf(secret, KeyHost), "names no host")
	}
	if strings.HasPrefix(c.Host, "/") || strings.Contains(c.Host, ",") {
		return delivery.SecretError(keyOf(secret, KeyHost), "must be one host name or address: Unix sockets and host lists are not supported")
	}
	c.Port = defaultPort
	if p := params[KeyPort]; p != "" {
		n, err := strconv.ParseUint(p, 10, 16)
		if err != nil || n == 0 {
			return delivery.SecretError(keyOf(secret, KeyPort), "is not a port number")
		}
		c.Port = uint16(n)
	}
	c.User = params[KeyUser]
	if c.User == "" {
		return delivery.SecretError(keyOf(secret, KeyUser), "names no user")
	}
	c.Password = params[KeyPassword]
	c.Database = params[KeyDatabase]
	if c.Database == "" {
		c.Database = c.User // libpq's default
	}
	if v := params["application_name"]; v != "" {
		c.ApplicationName = v
	}
	if ca, ok := secret[KeyCA]; ok {
		if err := delivery.CheckCA(ca); err != nil {
			return delivery.SecretError(KeyCA, "%v", err)
		}
		c.CA = ca
	}
	c.SSLMode = params["sslmode"]
	switch c.SSLMode {
	case "":
		// Plain text only when asked for: a password is never sent in clear by default.
		c.SSLMode = SSLRequire
		if c.CA != nil {
			c.SSLMode = SSLVerifyFull
		}
	case SSLDisable, SSLRequire, SSLVerifyCA, SSLVerifyFull:
	default:
		return delivery.SecretError(keyOf(secret, KeySSLMode), "%q is not one of %s, %s, %s, %s", c.SSLMode,
			SSLDisable, SSLRequire, SSLVerifyCA, SSLVerifyFull)
	}
	if c.SSLMode == SSLVerifyCA && c.CA == nil {
		return delivery.SecretError(KeyCA, "is required with sslmode %s", SSLVerifyCA)
	}
	return nil
}

// keyOf names the Secret key a connection setting came from: its own key, or the DSN.
func keyOf(secret map[string][]byte, key string) string {
	if _, ok := secret[KeyDSN]; ok {
		return KeyDSN
	}
	return key
}

// dsnParams are the DSN settings a sink may use. The others are refused: some
// read files of the operator's own file system (sslrootcert, passfile, service),
// which a tenant must not choose.
var dsnParams = map[string]string{
	"host": KeyHost, "hostaddr": KeyHost, "port": KeyPort, "dbname": KeyDatabase, "database": KeyDatabase,
	"user": KeyUser, "password": KeyPassword, "sslmode": "sslmode", "application_name": "application_name",
	"connect_timeout": "",
}

// parseDSN reads a postgres:// URL or a key=value connection string into the
// settings it names. Messages name the setting, never a value.
func parseDSN(dsn string) (map[string]string, error) {
	dsn = strings.TrimSpace(dsn)
	raw := map[string]string{}
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			return nil, errors.New("is not a valid postgres:// URL")
		}
		raw["host"] = u.Hostname()
		raw["port"] = u.Port()
		if u.User != nil {
			raw["user"] = u.User.Username()
			if p, ok := u.User.Password(); ok {
				raw["password"] = p
			}
		}
		raw["dbname"] = strings.TrimPrefix(u.Path, "/")
		for k, vs := range u.Query() {
			if len(vs) > 0 {
				raw[k] = vs[len(vs)-1]
			}
		}
	} else {
		var err error
		if raw, err = parseKeywordValue(dsn); err != nil {
			return nil, err
		}
	}
	params := map[string]string{}
	for k, v := range raw {
		to, ok := dsnParams[k]
		if !ok && !settingName(k) {
			return nil, errors.New("holds a setting that is not a valid name")
		}
		if !ok {
			return nil, fmt.Errorf("setting %q is not supported (put a CA bundle in %q)", k, KeyCA)
		}
		if to != "" && v != "" {
			params[to] = v
		}
	}
	return params, nil
}

// parseKeywordValue reads libpq's key=value form: values may be single-quoted,
// with \' and \\ inside.
func parseKeywordValue(s string) (map[string]string, error) {
	out := map[string]string{}
	for {
		s = strings.TrimLeft(s, " \t\n\r")
		if s == "" {
			return out, nil
		}
		eq := strings.IndexByte(s, '=')
		if eq <= 0 {
			return nil, errors.New("is neither a postgres:// URL nor key=value settings")
		}
		key := strings.TrimSpace(s[:eq])
		if !settingName(key) {
			// Not echoed: a mis-quoted value would put part of a password here.
			return nil, errors.New("is not valid key=value settings (quote values with spaces in single quotes, escape ' and \\ with \\)")
		}
		s = strings.TrimLeft(s[eq+1:], " \t")
		var val strings.Builder
		if strings.HasPrefix(s, "'") {
			s = s[1:]
			closed := false
			for len(s) > 0 {
				ch := s[0]
				s = s[1:]
				if ch == '\\' && len(s) > 0 {
					val.WriteByte(s[0])
					s = s[1:]
					continue
				}
				if ch == '\'' {
					closed = true
					break
				}
				val.WriteByte(ch)
			}
			if !closed {
				return nil, fmt.Errorf("setting %q has an unterminated quote", key)
			}
		} else {
			end := strings.IndexAny(s, " \t\n\r")
			if end < 0 {
				end = len(s)
			}
			val.WriteString(s[:end])
			s = s[end:]
		}
		out[key] = val.String()
	}
}

// settingName says whether a key of key=value settings looks like one.
func settingName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, r := range s {
		if r != '_' && (r < 'a' || r > 'z') {
			return false
		}
	}
	return true
}

func validIdentifier(s string) bool {
	if len(s) == 0 || len(s) > 63 {
		return false
	}
	for i, r := range s {
		switch {
		case r == '_' || (r >= 'a' && r <= 'z'):
		case i > 0 && r >= '0' && r <= '9':
		default:
			return false
		}
	}
	return true
}

// tlsConfig is libpq's meaning of each sslmode: require encrypts (and, with a CA,
// verifies the chain), verify-ca verifies the chain, verify-full also the host name.
func (c Config) tlsConfig() (*tls.Config, error) {
	if c.SSLMode == SSLDisable {
		return nil, nil
	}
	var roots *x509.CertPool
	if c.CA != nil {
		roots = x509.NewCertPool()
		if !roots.AppendCertsFromPEM(c.CA) {
			return nil, delivery.SecretError(KeyCA, "holds no usable certificate")
		}
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: c.Host}
	mode := c.SSLMode
	if mode == SSLRequire && roots != nil {
		mode = SSLVerifyCA
	}
	switch mode {
	case SSLRequire:
		cfg.InsecureSkipVerify = true //nolint:gosec // sslmode=require encrypts without verifying, as in libpq; verify-ca and verify-full verify
	case SSLVerifyCA:
		// The chain is verified against the CA, the name is not.
		cfg.InsecureSkipVerify = true //nolint:gosec // verified below, without the host name
		cfg.VerifyPeerCertificate = func(raw [][]byte, _ [][]*x509.Certificate) error {
			return verifyChain(raw, roots)
		}
	case SSLVerifyFull:
		cfg.RootCAs = roots
	}
	return cfg, nil
}

func verifyChain(raw [][]byte, roots *x509.CertPool) error {
	if len(raw) == 0 {
		return errors.New("the server sent no certificate")
	}
	certs := make([]*x509.Certificate, len(raw))
	for i, r := range raw {
		c, err := x509.ParseCertificate(r)
		if err != nil {
			return fmt.Errorf("the server's certificate does not parse: %w", err)
		}
		certs[i] = c
	}
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	_, err := certs[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter})
	return err
}
