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
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/customer-operator/customer-operator/controllers/delivery"
)

// DefaultMaxBatch is how many deliveries one batch carries at most.
const DefaultMaxBatch = 256

// fillWait bounds how long a flusher waits to fill its batch.
const fillWait = time.Millisecond

// flusherIdle is how long a flusher waits for work before it ends.
const flusherIdle = 30 * time.Second

// connIdle is how long a connection stays open unused.
const connIdle = time.Minute

// Sender keeps a PostgreSQL table equal to the Customers it is given: one row
// per Customer, upserted at a newer generation only, removed on delete.
//
// Concurrent Delivers are grouped: a few flushers, each on a connection of the
// pool, take what is waiting (up to the batch size), send it as one pgx.Batch
// in one round trip and one implicit transaction, its rows in one upsert, and
// answer each caller. A backfill of many Customers is therefore many rows per
// round trip and per statement, not one.
type Sender struct {
	cfg      Config
	pool     *pgxpool.Pool
	stmts    statements
	lockNS   string
	maxBatch int

	requests chan *request
	ctx      context.Context
	cancel   context.CancelFunc
	flushers sync.WaitGroup
	// running counts the flushers, started as deliveries need them (up to the
	// pool's size) and ended after flusherIdle without work, so that an idle
	// sink holds no goroutine but the pool's health check.
	running atomic.Int32
	// callers counts the Delivers under way, and sending the flushers
	// sending a batch: what fill goes by.
	callers, sending atomic.Int32
	maxFlush         int32
	idle             time.Duration
	idleConn         time.Duration
	// batches and rows count what was sent, for the benchmarks.
	batches, rows atomic.Int64
	// life orders starting flushers with Close's wait for them.
	life   sync.Mutex
	closed bool

	// limits bound the connections of the sinks of namespace; nil bounds nothing.
	limits    *delivery.ConnectionLimits
	namespace string

	// ensured is set once the tables are known to exist, and cleared when a
	// statement finds them missing (someone dropped them). ensuring is held
	// while one flusher creates them, so that the others wait for it.
	mu       sync.Mutex
	ensured  bool
	ensuring sync.Mutex
}

// request is one Deliver waiting for its batch.
type request struct {
	ev    delivery.Event
	row   *row // nil for a delete
	key   int64
	reply chan delivery.Result
	// deadline is when the delivery gives up: its batch is sent with the
	// earliest deadline of its requests, and a request picked up later is
	// answered without being sent.
	deadline time.Time
}

// Option tunes a Sender.
type Option func(*Sender)

// WithMaxBatch sets how many deliveries one batch carries at most.
func WithMaxBatch(n int) Option {
	return func(s *Sender) {
		if n > 0 {
			s.maxBatch = n
		}
	}
}

// WithConnectionLimits counts every connection against the limits of the
// sink's namespace.
func WithConnectionLimits(l *delivery.ConnectionLimits, namespace string) Option {
	return func(s *Sender) { s.limits, s.namespace = l, namespace }
}

// New returns a Sender for cfg. Connections are made when the first delivery
// needs one, each dialled through policy.
func New(cfg Config, policy delivery.AddressPolicy, opts ...Option) (*Sender, error) {
	pc, err := pgxpool.ParseConfig("sslmode=disable")
	if err != nil {
		return nil, fmt.Errorf("building the PostgreSQL pool configuration: %w", err)
	}
	cc := pc.ConnConfig
	cc.Host, cc.Port, cc.Database, cc.User, cc.Password = cfg.Host, cfg.Port, cfg.Database, cfg.User, cfg.Password
	cc.Fallbacks = nil
	if cc.TLSConfig, err = cfg.tlsConfig(); err != nil {
		return nil, err
	}
	cc.ConnectTimeout = cfg.Timeout
	if cc.ConnectTimeout <= 0 {
		cc.ConnectTimeout = delivery.DefaultTimeout
	}
	s := &Sender{maxBatch: DefaultMaxBatch, idle: flusherIdle, idleConn: connIdle}
	for _, o := range opts {
		o(s)
	}
	cc.DialFunc = pgconn.DialFunc(s.limits.Bound(s.namespace, policy.DialContext(&net.Dialer{KeepAlive: 30 * time.Second})))
	cc.RuntimeParams = map[string]string{"application_name": cfg.ApplicationName}
	pc.MaxConns = cfg.MaxConns
	if pc.MaxConns <= 0 || pc.MaxConns > MaxMaxConns {
		pc.MaxConns = DefaultMaxConns
	}
	pc.MinConns = 0
	// An idle sink gives its connections, and so its slots of the connection
	// limits, back within about twice this (the pool checks once a period).
	pc.MaxConnIdleTime = s.idleConn
	pc.HealthCheckPeriod = s.idleConn
	pool, err := pgxpool.NewWithConfig(context.Background(), pc)
	if err != nil {
		return nil, fmt.Errorf("building the PostgreSQL pool: %w", err)
	}
	s.cfg, s.pool, s.stmts, s.lockNS = cfg, pool, newStatements(cfg.Schema, cfg.Table), cfg.Schema+"."+cfg.Table
	s.requests, s.maxFlush = make(chan *request), pc.MaxConns
	s.ctx, s.cancel = context.WithCancel(context.Background())
	return s, nil
}

// Deliver writes one event: an upsert guarded by generation, or a delete. It
// returns once the batch holding it committed, or failed.
func (s *Sender) Deliver(ctx context.Context, ev delivery.Event) delivery.Result {
	start := time.Now()
	s.callers.Add(1)
	defer s.callers.Add(-1)
	res := s.deliver(ctx, ev)
	res.Duration = time.Since(start)
	return res
}

func (s *Sender) deliver(ctx context.Context, ev delivery.Event) delivery.Result {
	req, res := s.request(ev)
	if req == nil {
		return res
	}
	if err := s.hand(ctx, req); err != nil {
		return delivery.Result{Err: err}
	}
	select {
	case res := <-req.reply:
		return res
	case <-ctx.Done():
		// The batch may still commit: the next delivery of this Customer is
		// guarded by generation, so that is harmless.
		return delivery.Result{Err: fmt.Errorf("no answer from PostgreSQL within %s", s.cfg.timeout())}
	}
}

// request makes an event the op of a batch, or says why it cannot be one.
func (s *Sender) request(ev delivery.Event) (*request, delivery.Result) {
	c := ev.Customer
	if c == nil {
		return nil, delivery.Result{Err: errors.New("no Customer in the event"), Refused: true}
	}
	req := &request{ev: ev, key: lockKey(s.lockNS, string(c.UID)), reply: make(chan delivery.Result, 1)}
	if ev.Type != delivery.TypeDeleted {
		r, err := newRow(c, s.cfg.Fields)
		if err != nil {
			return nil, delivery.Result{Err: err, Refused: true}
		}
		req.row = r
	}
	// No timer or context of its own: the wait for a flusher checks the
	// deadline, and the batch is sent within it.
	req.deadline = time.Now().Add(s.cfg.timeout())
	return req, delivery.Result{}
}

// DeliverGroup writes several events as one batch (several, past the batch
// size), sent from the caller's goroutine: the engine's group of a sink's
// queued Customers is already what the flushers would gather from concurrent
// Delivers. It returns when every batch committed or failed, or ctx ended.
func (s *Sender) DeliverGroup(ctx context.Context, evs []delivery.Event) []delivery.Result {
	start := time.Now()
	results := make([]delivery.Result, len(evs))
	batch := make([]*request, 0, len(evs))
	index := make([]int, 0, len(evs))
	for i, ev := range evs {
		req, res := s.request(ev)
		if req == nil {
			results[i] = res
			continue
		}
		batch = append(batch, req)
		index = append(index, i)
	}
	// The batches end with the caller's context as with the Sender's.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(s.ctx, cancel)()
	for lo := 0; lo < len(batch); lo += s.maxBatch {
		s.run(ctx, batch[lo:min(lo+s.maxBatch, len(batch))])
	}
	for j, req := range batch {
		results[index[j]] = <-req.reply
	}
	for i := range results {
		results[i].Duration = time.Since(start)
	}
	return results
}

// hand gives req to a flusher, starting one when none is free and the pool
// has room. A flusher that ends for idleness as req arrives is replaced on the
// next tick.
func (s *Sender) hand(ctx context.Context, req *request) error {
	select {
	case s.requests <- req:
		return nil
	default:
	}
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		s.spawn()
		select {
		case s.requests <- req:
			return nil
		case <-s.ctx.Done():
			return errors.New("the PostgreSQL sink was closed")
		case <-ctx.Done():
			return fmt.Errorf("no PostgreSQL connection free within %s", s.cfg.timeout())
		case now := <-tick.C:
			if now.After(req.deadline) {
				return fmt.Errorf("no PostgreSQL connection free within %s", s.cfg.timeout())
			}
		}
	}
}

// minShare is how many of the Delivers under way a flusher past the second
// is started for. Each batch costs a round trip, a lock statement and a commit
// whatever its size, so a few batches of many rows cost the database less
// than one batch of a few rows on every connection. Two flushers let one batch
// be built while the other runs; more add nothing while the round trip, not
// the database, bounds the rate: the callers are answered as fast either way.
const minShare = 32

// spawn starts a flusher unless enough run already: two, or one per minShare
// of the Delivers under way, at most one per connection of the pool.
func (s *Sender) spawn() {
	callers := s.callers.Load()
	limit := min(s.maxFlush, max(min(2, callers), (callers+minShare-1)/minShare))
	for {
		n := s.running.Load()
		if n >= limit {
			return
		}
		if s.running.CompareAndSwap(n, n+1) {
			break
		}
	}
	s.life.Lock()
	defer s.life.Unlock()
	if s.closed {
		s.running.Add(-1)
		return
	}
	s.flushers.Add(1)
	go func() {
		defer s.flushers.Done()
		defer s.running.Add(-1)
		s.flush()
	}()
}

func (c Config) timeout() time.Duration {
	if c.Timeout <= 0 {
		return delivery.DefaultTimeout
	}
	return c.Timeout
}

// Close stops the flushers once their batches are answered and closes the pool.
func (s *Sender) Close() {
	s.life.Lock()
	s.closed = true
	s.life.Unlock()
	s.cancel()
	s.flushers.Wait()
	s.pool.Close()
}

// flush is one connection's group commit loop.
func (s *Sender) flush() {
	batch := make([]*request, 0, s.maxBatch)
	idle := time.NewTimer(s.idle)
	defer idle.Stop()
	fill := time.NewTimer(time.Hour)
	fill.Stop()
	for {
		batch = batch[:0]
		idle.Reset(s.idle)
		select {
		case <-s.ctx.Done():
			return
		case <-idle.C:
			return
		case r := <-s.requests:
			batch = append(batch, r)
		}
	collect:
		for len(batch) < s.maxBatch {
			select {
			case r := <-s.requests:
				batch = append(batch, r)
			default:
				break collect
			}
		}
		batch = s.fill(batch, fill)
		s.sending.Add(1)
		s.run(s.ctx, batch)
		s.sending.Add(-1)
	}
}

// fill waits, briefly, for deliveries on their way while another flusher is
// sending: their callers were answered a moment ago and are building their
// next rows. Without it a free flusher sends whatever arrived first, one or
// two rows, and a backfill takes about twice the round trips and commits.
// Its share is the Delivers under way split between the flushers.
func (s *Sender) fill(batch []*request, timer *time.Timer) []*request {
	if s.sending.Load() == 0 {
		return batch // the others are idle: no one else is about to answer
	}
	running := max(1, s.running.Load())
	target := min(s.maxBatch, int((s.callers.Load()+running-1)/running))
	if len(batch) >= target {
		return batch
	}
	timer.Reset(fillWait)
	defer timer.Stop()
	for len(batch) < target {
		select {
		case r := <-s.requests:
			batch = append(batch, r)
		case <-timer.C:
			return batch
		}
	}
	return batch
}

// run sends a batch and answers its callers. A row PostgreSQL refuses aborts
// the batch's transaction; the others are then sent again one by one, so that
// only that Customer is refused.
func (s *Sender) run(parent context.Context, batch []*request) {
	now := time.Now()
	deadline := now.Add(s.cfg.timeout())
	live := make([]*request, 0, len(batch)) // not in place: the caller's slice stays whole
	for _, r := range batch {
		if !r.deadline.After(now) {
			r.reply <- delivery.Result{Err: fmt.Errorf("no answer from PostgreSQL within %s", s.cfg.timeout())}
			continue
		}
		deadline = minTime(deadline, r.deadline)
		live = append(live, r)
	}
	batch = live
	if len(batch) == 0 {
		return
	}
	ctx, cancel := context.WithDeadline(parent, deadline)
	defer cancel()
	err := s.send(ctx, batch)
	if err == nil {
		answer(batch, delivery.Result{})
		return
	}
	var be *batchError
	if !errors.As(err, &be) || !refusal(be.err) {
		answer(batch, delivery.Result{Err: s.describe(err)})
		return
	}
	for _, r := range batch {
		if err := s.sendOne(parent, r); err != nil {
			var one *batchError
			r.reply <- delivery.Result{Err: s.describe(err), Refused: errors.As(err, &one) && refusal(one.err)}
			continue
		}
		r.reply <- delivery.Result{}
	}
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// sendOne sends one delivery on its own, within its deadline.
func (s *Sender) sendOne(parent context.Context, r *request) error {
	ctx, cancel := context.WithDeadline(parent, r.deadline)
	defer cancel()
	return s.send(ctx, []*request{r})
}

func answer(batch []*request, res delivery.Result) {
	for _, r := range batch {
		r.reply <- res
	}
}

// batchError is a statement of a batch that PostgreSQL refused.
type batchError struct{ err error }

func (e *batchError) Error() string { return e.err.Error() }
func (e *batchError) Unwrap() error { return e.err }

// send runs a batch in one round trip and one transaction: the Customers'
// locks, the deletes, then one upsert of the other rows. The order within a
// batch does not matter: every op is guarded by generation, against the row
// and against the deleted Customers' generations.
func (s *Sender) send(ctx context.Context, batch []*request) error {
	if err := s.ensureTables(ctx); err != nil {
		return err
	}
	keys := make([]int64, 0, len(batch))
	for _, r := range batch {
		keys = append(keys, r.key)
	}
	slices.Sort(keys)
	keys = slices.Compact(keys)
	b := &pgx.Batch{}
	b.Queue(s.stmts.lock, keys)
	s.batches.Add(1)
	s.rows.Add(int64(len(batch)))
	rows := make([]*row, 0, len(batch))
	at := make(map[string]int, len(batch))
	for _, r := range batch {
		if r.row == nil {
			b.Queue(s.stmts.del, string(r.ev.Customer.UID), r.ev.Customer.Generation)
			continue
		}
		// A Customer's rows in one batch upsert as the newer one: the older
		// would change nothing, and ON CONFLICT cannot update a row twice.
		if i, ok := at[r.row.uid]; ok {
			if r.row.generation >= rows[i].generation {
				rows[i] = r.row
			}
			continue
		}
		at[r.row.uid] = len(rows)
		rows = append(rows, r.row)
	}
	if len(rows) > 0 {
		b.Queue(s.stmts.upsert, columns(rows)...)
	}
	conn, err := s.acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	br := conn.SendBatch(ctx, b)
	if _, err := br.Exec(); err != nil {
		_ = br.Close()
		return s.checkMissing(err)
	}
	for range b.Len() - 1 {
		if _, err := br.Exec(); err != nil {
			_ = br.Close()
			return &batchError{err: s.checkMissing(err)}
		}
	}
	return br.Close()
}

// acquire takes a connection of the pool. When the connection limits refuse
// a new one while the pool holds others, it waits for one of those instead:
// the sink then runs on the connections its namespace has room for.
func (s *Sender) acquire(ctx context.Context) (*pgxpool.Conn, error) {
	wait := 2 * time.Millisecond
	for {
		conn, err := s.pool.Acquire(ctx)
		var limit *delivery.ConnectionLimitError
		if err == nil || !errors.As(err, &limit) || s.pool.Stat().TotalConns() == 0 {
			return conn, err
		}
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(wait):
		}
		wait = min(2*wait, 50*time.Millisecond)
	}
}

// checkMissing notices tables dropped behind the sink's back, so that the next
// batch creates them again.
func (s *Sender) checkMissing(err error) error {
	var pe *pgconn.PgError
	if errors.As(err, &pe) && (pe.Code == "42P01" || pe.Code == "3F000") { // undefined_table, invalid_schema_name
		s.mu.Lock()
		s.ensured = false
		s.mu.Unlock()
	}
	return err
}

// ensureTables creates the tables when missing, once per Sender (and again after
// they went missing), and prunes old tombstones.
func (s *Sender) ensureTables(ctx context.Context) error {
	s.mu.Lock()
	ensured := s.ensured
	s.mu.Unlock()
	if ensured {
		return nil
	}
	s.ensuring.Lock()
	defer s.ensuring.Unlock()
	s.mu.Lock()
	ensured = s.ensured
	s.mu.Unlock()
	if ensured {
		return nil
	}
	// One statement string with several commands runs as one implicit
	// transaction over the simple protocol. CREATE TABLE IF NOT EXISTS is not
	// safe against itself running concurrently (a unique violation in the
	// catalog): the lock serialises it with other senders on the same table,
	// another sink's or another operator replica's.
	lock := fmt.Sprintf("SELECT pg_advisory_xact_lock(%d);\n", lockKey("create "+s.lockNS, ""))
	if _, err := s.pool.Exec(ctx, lock+s.stmts.ddl+s.stmts.prune, pgx.QueryExecModeSimpleProtocol); err != nil {
		return fmt.Errorf("creating the table %s.%s: %w", s.cfg.Schema, s.cfg.Table, err)
	}
	s.mu.Lock()
	s.ensured = true
	s.mu.Unlock()
	return nil
}

// refusal says whether PostgreSQL refused a row for its content (a data
// exception or an integrity constraint, SQLSTATE classes 22 and 23), rather
// than the sink being unwell.
func refusal(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (strings.HasPrefix(pe.Code, "22") || strings.HasPrefix(pe.Code, "23"))
}

// describe turns an error into a message for status, Events and logs: the
// server's SQLSTATE and message, a refused address, or the class of a
// connection failure. It never holds the password.
func (s *Sender) describe(err error) error {
	var pe *pgconn.PgError
	var na *delivery.AddressNotAllowedError
	var limit *delivery.ConnectionLimitError
	var msg string
	switch {
	case errors.As(err, &pe):
		msg = fmt.Sprintf("PostgreSQL answered %s: %s", pe.Code, pe.Message)
	case errors.As(err, &na):
		msg = na.Error()
	case errors.As(err, &limit):
		msg = limit.Error()
	case errors.Is(err, context.DeadlineExceeded):
		msg = fmt.Sprintf("no answer from PostgreSQL at %s within %s", s.cfg.Address(), s.cfg.timeout())
	default:
		msg = connectionProblem(err, s.cfg.Address())
	}
	if s.cfg.Password != "" {
		msg = strings.ReplaceAll(msg, s.cfg.Password, "<redacted>")
	}
	return &deliveryError{msg: msg, cause: err}
}

func connectionProblem(err error, addr string) string {
	var ne *net.OpError
	var de *net.DNSError
	switch {
	case errors.As(err, &de):
		return fmt.Sprintf("PostgreSQL host %s does not resolve", addr)
	case errors.As(err, &ne) && strings.Contains(ne.Err.Error(), "refused"):
		return fmt.Sprintf("connection to PostgreSQL at %s refused", addr)
	case errors.As(err, &ne):
		return fmt.Sprintf("connection to PostgreSQL at %s failed (%s)", addr, ne.Op)
	case strings.Contains(err.Error(), "tls"), strings.Contains(err.Error(), "x509"), strings.Contains(err.Error(), "certificate"):
		return fmt.Sprintf("TLS with PostgreSQL at %s failed", addr)
	default:
		return fmt.Sprintf("PostgreSQL at %s failed: %s", addr, firstLine(err.Error()))
	}
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if len(s) > 200 {
		s = s[:200]
	}
	return s
}

// deliveryError keeps the cause for errors.Is and errors.As while its message
// is the safe one.
type deliveryError struct {
	msg   string
	cause error
}

func (e *deliveryError) Error() string { return e.msg }
func (e *deliveryError) Unwrap() error { return e.cause }
