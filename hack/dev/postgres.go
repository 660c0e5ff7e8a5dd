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

package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// The --postgres database: its own port, so that a PostgreSQL of the host on 5432
// is left alone. The credentials are those of the published sample.
const (
	postgresAddr     = "127.0.0.1:5433"
	postgresPort     = "5433"
	postgresDatabase = "crm"
	postgresUser     = "customer_operator"
	postgresPassword = "sample-only-5d1c0a"
	postgresSample   = "config/samples/crm_v1alpha1_customersink_postgres.yaml"
)

// findPostgres finds the directory of initdb and postgres: PATH, then the newest
// /usr/lib/postgresql/*/bin (Debian's postgresql package).
func findPostgres() (string, error) {
	if p, err := exec.LookPath("initdb"); err == nil {
		if p, err := filepath.EvalSymlinks(p); err == nil {
			if _, err := os.Stat(filepath.Join(filepath.Dir(p), "postgres")); err == nil {
				return filepath.Dir(p), nil
			}
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	version := func(d string) int { n, _ := strconv.Atoi(filepath.Base(filepath.Dir(d))); return n }
	sort.Slice(dirs, func(i, j int) bool { return version(dirs[i]) > version(dirs[j]) })
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d, nil
		}
	}
	return "", errors.New("--postgres needs PostgreSQL: no initdb in PATH or /usr/lib/postgresql/*/bin (apt-get install postgresql)")
}

// postgresCredential is nobody's when running as root: the server refuses root.
func postgresCredential() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("nobody")
	if err != nil {
		return nil, fmt.Errorf("PostgreSQL refuses to run as root, and there is no user nobody: %w", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil //nolint:gosec // ids from the passwd file
}

// startPostgres runs a PostgreSQL server with its data in .dev/postgres (kept, as
// etcd's is), creates the sample's database, and applies the sample sink pointing at it.
func (d *devEnv) startPostgres(ctx context.Context) error {
	bin, err := findPostgres()
	if err != nil {
		return err
	}
	if err := checkFree(postgresAddr); err != nil {
		return err
	}
	cred, err := postgresCredential()
	if err != nil {
		return err
	}
	root := filepath.Join(d.stateDir, "postgres")
	data := filepath.Join(root, "data")
	chown := func(p string) error {
		if cred == nil {
			return nil
		}
		return os.Chown(p, int(cred.Uid), int(cred.Gid))
	}
	if _, err := os.Stat(filepath.Join(data, "PG_VERSION")); err != nil {
		d.logf("initialising PostgreSQL in %s", data)
		if err := os.MkdirAll(root, 0o700); err != nil {
			return fmt.Errorf("creating %s: %w", root, err)
		}
		pwfile := filepath.Join(root, "pwfile")
		if err := os.WriteFile(pwfile, []byte(postgresPassword+"\n"), 0o600); err != nil {
			return fmt.Errorf("writing the password file: %w", err)
		}
		for _, p := range []string{root, pwfile} {
			if err := chown(p); err != nil {
				return fmt.Errorf("handing %s to nobody: %w", p, err)
			}
		}
		initdb := exec.CommandContext(ctx, filepath.Join(bin, "initdb"), "-D", data, "-U", postgresUser, "--pwfile="+pwfile,
			"--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C", "--no-instructions")
		initdb.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
		initdb.Dir = root
		if out, err := initdb.CombinedOutput(); err != nil {
			return fmt.Errorf("initdb: %w\n%s", err, out)
		}
		_ = os.Remove(pwfile)
	}
	if err := d.startChildAs("postgres", cred, nil, filepath.Join(bin, "postgres"),
		"-D", data, "-h", "127.0.0.1", "-p", postgresPort, "-k", root); err != nil {
		return err
	}

	// Wait for it, then create the sample's database.
	url := fmt.Sprintf("postgres://%s:%s@%s/postgres?sslmode=disable", postgresUser, postgresPassword, postgresAddr)
	deadline := time.Now().Add(30 * time.Second)
	var conn *pgx.Conn
	for {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		conn, err = pgx.Connect(cctx, url)
		cancel()
		if err == nil {
			break
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("PostgreSQL did not accept connections on %s: %w", postgresAddr, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	defer func() { _ = conn.Close(context.Background()) }()
	var exists bool
	if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)`, postgresDatabase).Scan(&exists); err != nil {
		return fmt.Errorf("looking for the database %s: %w", postgresDatabase, err)
	}
	if !exists {
		if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{postgresDatabase}.Sanitize()); err != nil {
			return fmt.Errorf("creating the database %s: %w", postgresDatabase, err)
		}
	}

	// The sample, on this server's port.
	sample, err := os.ReadFile(d.abs(postgresSample))
	if err != nil {
		return fmt.Errorf("reading %s: %w", postgresSample, err)
	}
	patched := strings.Replace(string(sample), `port: "5432"`, `port: "`+postgresPort+`"`, 1)
	path := filepath.Join(d.stateDir, "postgres-sink.yaml")
	if err := os.WriteFile(path, []byte(patched), 0o600); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := d.run(ctx, "kubectl", d.kubectl("apply", "-f", path)); err != nil {
		return fmt.Errorf("applying the PostgreSQL sink: %w", err)
	}
	return nil
}

// psqlCommand shows the sink's table.
func psqlCommand() string {
	return fmt.Sprintf(`psql "postgres://%s:%s@%s/%s?sslmode=disable" -c 'SELECT namespace, name, generation, display_name, email, lifecycle, updated_at FROM customers ORDER BY namespace, name'`,
		postgresUser, postgresPassword, postgresAddr, postgresDatabase)
}
