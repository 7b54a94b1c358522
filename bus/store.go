package bus

import (
	"encoding/json"
	"errors"
	"fmt"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// The bridge hands each event to the store without waiting: the store's
// acknowledgements come back on outboxAcks. A store that answers nothing
// (a full disk leaves JetStream's file store failing each write without
// an answer) is found by the time since its last answer, not by a
// timeout per event.
const (
	// storeStall is how long stores may go unanswered before the store
	// is taken for stuck: the hive is degraded and what is sent is
	// dropped, but for one probe a second that finds it working again.
	storeStall = 5 * time.Second
	// lowDisk is the free space under which a stuck store is said to be
	// out of space.
	lowDisk = 1 << 20
)

// store keeps one event (its hub copy) under its id. Called by the
// bridge only; it never waits for the store.
func (o *outbox) store(id string, data []byte) {
	now := time.Now()
	if !o.stalled.Load() && o.stuck(now) {
		// The unanswered stores are given up, counted as dropped.
		o.stalled.Store(true)
		o.dropped[dropStore].Add(uint64(max(o.pending.Swap(0), 0)))
		o.noteStoreErr(o.stuckErr())
	}
	if o.stalled.Load() {
		if now.Sub(o.lastProbe) < time.Second {
			o.dropped[dropStore].Add(1) // why was noted when the stall began
			return
		}
		o.lastProbe = now // this one goes, a probe: its answer ends the stall
	}
	if o.pending.Load() >= maxPendingStores {
		o.dropStore(errors.New("the store is not keeping up"))
		return
	}
	m := &nats.Msg{Subject: outboxSubject, Reply: outboxAcks, Header: nats.Header{}, Data: data}
	m.Header.Set(jetstream.MsgIDHeader, id)
	if o.pending.Add(1) == 1 {
		o.waitFrom.Store(now.UnixNano())
	}
	if err := o.nc.PublishMsg(m); err != nil {
		o.pending.Add(-1)
		o.dropStore(err)
	}
}

// stuck reports stores unanswered for storeStall.
func (o *outbox) stuck(now time.Time) bool {
	if o.pending.Load() == 0 {
		return false
	}
	since := max(o.lastAck.Load(), o.waitFrom.Load())
	return now.Sub(time.Unix(0, since)) > storeStall
}

// stuckErr says why the store answers nothing: out of space, when that
// is what is missing. It names no figure that changes while the stall
// lasts: the hive's health would change with it every tick.
func (o *outbox) stuckErr() error {
	var fs syscall.Statfs_t
	if err := syscall.Statfs(o.cfg.Dir, &fs); err == nil && fs.Bavail*uint64(fs.Bsize) < lowDisk {
		// JetStream's file store keeps a write error: tested, it stayed
		// failed after space came back, until a restart.
		return errors.New("no space left on its disk; free space, then restart the hive")
	}
	return fmt.Errorf("the store has answered nothing for over %v (its log says why)", storeStall)
}

// onStoreAck takes the store's answer to one store.
func (o *outbox) onStoreAck(m *nats.Msg) {
	if o.pending.Add(-1) < 0 {
		o.pending.Store(0)
	}
	o.lastAck.Store(time.Now().UnixNano())
	if m.Header.Get("Status") == "503" {
		o.dropStore(errors.New("the store is not running (JetStream disabled: disk full?)"))
		return
	}
	var a struct {
		Seq   uint64 `json:"seq"`
		Error *struct {
			Description string `json:"description"`
		} `json:"error"`
	}
	if err := json.Unmarshal(m.Data, &a); err != nil {
		o.dropStore(fmt.Errorf("unreadable store answer: %w", err))
		return
	}
	if a.Error != nil {
		o.dropStore(errors.New(a.Error.Description))
		return
	}
	o.stalled.Store(false)
	raise(&o.stored, a.Seq)
	if o.storeErr.Swap(nil) != nil {
		o.log.Info("hub outbox: storing again")
		o.errLogged.Store(false)
	}
	o.poke()
}

// dropStore counts an event the store did not keep and remembers why,
// for the hive's health.
func (o *outbox) dropStore(err error) {
	o.dropped[dropStore].Add(1)
	o.noteStoreErr(err)
}

// noteStoreErr remembers why the store fails, until it answers again.
func (o *outbox) noteStoreErr(err error) {
	msg := err.Error()
	o.storeErr.Store(&msg)
	if !o.errLogged.Swap(true) {
		o.log.Warn("hub outbox: an event could not be stored for the hub; later failures are only counted (hive_hub_dropped_total{reason=\"store\"})",
			"dir", o.cfg.Dir, "err", err)
	}
}

// health is why the store fails, or "" while it keeps what it is given.
func (o *outbox) health() string {
	if o == nil {
		return ""
	}
	if p := o.storeErr.Load(); p != nil {
		return "the hub store (" + o.cfg.Dir + ") cannot keep telemetry: " + *p + "; the hub's history of this hive has a hole until it can, live telemetry goes on"
	}
	return ""
}

// raise sets v to n when n is larger: answers may come out of order.
func raise(v *atomic.Uint64, n uint64) {
	for {
		cur := v.Load()
		if n <= cur || v.CompareAndSwap(cur, n) {
			return
		}
	}
}
