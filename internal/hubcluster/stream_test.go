package hubcluster

import (
	"context"
	"errors"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

func TestRetryAsksAgainOnlyWhenUnanswered(t *testing.T) {
	refused := &jetstream.APIError{Code: 400, Description: "stream name already in use"}
	for name, c := range map[string]struct {
		errs  []error
		calls int
		err   error
	}{
		"answered at once":       {errs: []error{nil}, calls: 1},
		"timeout, then answered": {errs: []error{context.DeadlineExceeded, nats.ErrNoResponders, nil}, calls: 3},
		"not ready, then ok":     {errs: []error{jetstream.ErrJetStreamNotEnabled, nil}, calls: 2},
		"refused":                {errs: []error{refused, nil}, calls: 1, err: refused},
	} {
		t.Run(name, func(t *testing.T) {
			calls := 0
			err := Retry(context.Background(), func(ctx context.Context) error {
				if _, ok := ctx.Deadline(); !ok {
					t.Error("an attempt without a deadline")
				}
				calls++
				return c.errs[calls-1]
			})
			if calls != c.calls || !errors.Is(err, c.err) {
				t.Errorf("%d calls, %v; want %d, %v", calls, err, c.calls, c.err)
			}
		})
	}
}

func TestRetryStopsWithItsContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	calls := 0
	err := Retry(ctx, func(context.Context) error {
		calls++
		cancel()
		return nats.ErrTimeout
	})
	if calls != 1 || !errors.Is(err, nats.ErrTimeout) {
		t.Errorf("%d calls, %v; want 1, the last error", calls, err)
	}
}
