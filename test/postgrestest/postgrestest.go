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

// Package postgrestest runs a real PostgreSQL server for tests: initdb and
// postgres from the host's installation (Debian's postgresql package), in a
// temporary directory, listening on 127.0.0.1 on a free port, as an
// unprivileged user when the tests run as root (the server refuses root).
package postgrestest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/customer-operator/customer-operator/test/testcert"
)

// Credentials of the server's superuser; connections over TCP need the password
// (scram-sha-256).
const (
	User     = "postgres"
	Password = "pg-test-Secret-7f3a"
	Database = "postgres"
)

// Server is one PostgreSQL server with its own data directory.
type Server struct {
	Host string
	Port int

	bin     string
	dir     string // data directory
	logPath string
	cred    *syscall.Credential
	cmd     *exec.Cmd
	tls     bool
	caPEM   []byte
	// done is closed when the server exits, with its exit status in exitErr.
	done    chan struct{}
	exitErr error
}

// Option tunes a Server.
type Option func(*Server)

// WithTLS has the server offer TLS with a certificate for 127.0.0.1 and
// localhost, signed by a CA of its own (Server.CA).
func WithTLS() Option { return func(s *Server) { s.tls = true } }

// Start initialises a data directory and starts a server, stopped and removed
// when the test ends. It fails the test, never skips it, when PostgreSQL is not
// installed: .ci/run installs it.
func Start(t testing.TB, opts ...Option) *Server {
	t.Helper()
	bin, err := findBin()
	if err != nil {
		t.Fatalf("PostgreSQL is needed: %v (install it: apt-get install -y postgresql)", err)
	}
	root, err := os.MkdirTemp("", "postgrestest-")
	if err != nil {
		t.Fatalf("making the data directory: %v", err)
	}
	s := &Server{Host: "127.0.0.1", bin: bin, dir: filepath.Join(root, "data"), logPath: filepath.Join(root, "postgres.log")}
	for _, o := range opts {
		o(s)
	}
	t.Cleanup(func() {
		s.stop()
		_ = os.RemoveAll(root)
	})
	if os.Geteuid() == 0 {
		u, err := user.Lookup("nobody")
		if err != nil {
			t.Fatalf("running PostgreSQL as root is refused, and there is no user nobody: %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		s.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)} //nolint:gosec // ids from the passwd file
		if err := os.Chown(root, uid, gid); err != nil {
			t.Fatalf("handing the data directory to nobody: %v", err)
		}
	}
	pwfile := filepath.Join(root, "pwfile")
	if err := os.WriteFile(pwfile, []byte(Password+"\n"), 0o600); err != nil {
		t.Fatalf("writing the password file: %v", err)
	}
	if s.cred != nil {
		if err := os.Chown(pwfile, int(s.cred.Uid), int(s.cred.Gid)); err != nil {
			t.Fatalf("handing the password file to nobody: %v", err)
		}
	}
	initdb := s.command(filepath.Join(bin, "initdb"), "-D", s.dir, "-U", User, "--pwfile="+pwfile,
		"--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions")
	if out, err := initdb.CombinedOutput(); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	if s.tls {
		s.writeCertificates(t, root)
	}
	s.Port = freePort(t)
	s.Restart(t)
	return s
}

// CA is the PEM certificate of the CA that signed a WithTLS server's certificate.
func (s *Server) CA() []byte { return s.caPEM }

// findBin finds the directory of initdb and postgres: PATH, then the newest
// /usr/lib/postgresql/*/bin.
func findBin() (string, error) {
	if p, err := exec.LookPath("initdb"); err == nil {
		if p, err := filepath.EvalSymlinks(p); err == nil {
			dir := filepath.Dir(p)
			if _, err := os.Stat(filepath.Join(dir, "postgres")); err == nil {
				return dir, nil
			}
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return version(dirs[i]) > version(dirs[j]) })
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "postgres")); err == nil {
			if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
				return d, nil
			}
		}
	}
	return "", errors.New("no initdb and postgres in PATH or /usr/lib/postgresql/*/bin")
}

func version(binDir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return n
}

func freePort(t testing.TB) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("finding a free port: %v", err)
	}
	defer func() { _ = l.Close() }()
	return l.Addr().(*net.TCPAddr).Port
}

func (s *Server) command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	cmd.Dir = filepath.Dir(s.dir)
	// The server goes with the test process, even when it is killed.
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred, Pdeathsig: syscall.SIGKILL, Setpgid: true}
	return cmd
}

// Restart starts the server again on the same port and data after Stop (Start
// calls it the first time), and returns once it accepts connections.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	if s.cmd != nil {
		t.Fatalf("the PostgreSQL server is running already")
	}
	logFile, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatalf("opening the server log: %v", err)
	}
	defer func() { _ = logFile.Close() }()
	// fsync off: a clean shutdown still writes everything, and the tests stop
	// the server cleanly; what they test is the operator, not the disk.
	args := []string{"-D", s.dir, "-h", s.Host, "-p", strconv.Itoa(s.Port),
		"-k", s.dir, "-c", "fsync=off", "-c", "full_page_writes=off", "-c", "max_connections=200",
		"-c", "listen_addresses=" + s.Host}
	if s.tls {
		root := filepath.Dir(s.dir)
		args = append(args, "-c", "ssl=on", "-c", "ssl_cert_file="+filepath.Join(root, "server.crt"),
			"-c", "ssl_key_file="+filepath.Join(root, "server.key"))
	}
	cmd := s.command(filepath.Join(s.bin, "postgres"), args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting postgres: %v", err)
	}
	done := make(chan struct{})
	s.cmd, s.done = cmd, done
	go func() {
		s.exitErr = cmd.Wait()
		close(done)
	}()

	deadline := time.Now().Add(60 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		conn, err := pgx.Connect(ctx, s.DSN())
		if err == nil {
			_ = conn.Close(ctx)
			cancel()
			return
		}
		cancel()
		select {
		case <-s.done:
			s.cmd = nil
			t.Fatalf("postgres exited: %v\n%s", s.exitErr, s.Log())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("postgres did not accept connections within a minute: %v\n%s", err, s.Log())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Stop shuts the server down (fast shutdown: sessions are ended, everything
// committed is kept) and returns once it has exited.
func (s *Server) Stop(t testing.TB) {
	t.Helper()
	if s.cmd == nil {
		t.Fatalf("the PostgreSQL server is not running")
	}
	s.stop()
}

func (s *Server) stop() {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-s.done:
	case <-time.After(30 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
	s.cmd = nil
}

// DSN is a postgres:// URL for the superuser, without TLS.
func (s *Server) DSN() string {
	return fmt.Sprintf("postgres://%s:%s@%s/%s?sslmode=disable", User, Password, net.JoinHostPort(s.Host, strconv.Itoa(s.Port)), Database)
}

// ApplicationDSN is DSN with application_name set to app, so that the
// connections made with it can be counted (Connections).
func (s *Server) ApplicationDSN(app string) string {
	return s.DSN() + "&application_name=" + url.QueryEscape(app)
}

// Backends lists the server processes (pids, in order) serving the open
// connections of application app, asking over conn.
func Backends(ctx context.Context, conn *pgx.Conn, app string) ([]int, error) {
	rows, err := conn.Query(ctx, `SELECT pid FROM pg_stat_activity WHERE application_name = $1 ORDER BY pid`, app)
	if err != nil {
		return nil, fmt.Errorf("listing the connections of %s: %w", app, err)
	}
	pids, err := pgx.CollectRows(rows, pgx.RowTo[int])
	if err != nil {
		return nil, fmt.Errorf("listing the connections of %s: %w", app, err)
	}
	return pids, nil
}

// Connections counts the server's open connections of application app,
// asking over conn.
func Connections(ctx context.Context, conn *pgx.Conn, app string) (int, error) {
	pids, err := Backends(ctx, conn, app)
	return len(pids), err
}

// Connect opens a connection for the test's own queries, closed when it ends.
func (s *Server) Connect(t testing.TB) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, s.DSN())
	if err != nil {
		t.Fatalf("connecting to PostgreSQL: %v", err)
	}
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	return conn
}

// Log is the server's log so far, for failure messages.
func (s *Server) Log() string {
	b, err := os.ReadFile(s.logPath)
	if err != nil {
		return ""
	}
	out := string(b)
	if len(out) > 4000 {
		out = "..." + out[len(out)-4000:]
	}
	return strings.TrimSpace(out)
}

// writeCertificates makes a CA and a server certificate for 127.0.0.1 and
// localhost, the key readable by the server's user only, as PostgreSQL insists.
func (s *Server) writeCertificates(t testing.TB, root string) {
	t.Helper()
	certs, err := testcert.NewLoopback("postgrestest")
	if err != nil {
		t.Fatal(err)
	}
	s.caPEM = certs.CAPEM
	for name, data := range map[string][]byte{
		"server.crt": certs.CertPEM,
		"server.key": certs.KeyPEM,
	} {
		p := filepath.Join(root, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		if s.cred != nil {
			if err := os.Chown(p, int(s.cred.Uid), int(s.cred.Gid)); err != nil {
				t.Fatal(err)
			}
		}
	}
}
