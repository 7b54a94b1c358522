package bus

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/rbee/hive/internal/ratelog"
)

// Log rate of the embedded servers: a client looping on a forbidden
// publish makes nats-server log one error per attempt. Past the burst,
// lines are counted, not written, and the count is logged with the next
// line that passes.
const (
	natsLogBurst = 20
	natsLogRate  = 5 // lines per second once the burst is spent
)

// natsLogger adapts nats-server's printf logger to slog. Fatalf must not
// exit: the server reports startup failures through it and then returns,
// so the message is kept for Start to report.
type natsLogger struct {
	log   *slog.Logger
	fatal chan string
	rate  *ratelog.Limiter
}

func newNATSLogger(log *slog.Logger) *natsLogger {
	return &natsLogger{log: log, fatal: make(chan string, 1), rate: ratelog.New(log, natsLogBurst, natsLogRate)}
}

func (l *natsLogger) Noticef(format string, v ...any) { l.emit(slog.LevelDebug, format, v) }
func (l *natsLogger) Warnf(format string, v ...any)   { l.emit(slog.LevelWarn, format, v) }
func (l *natsLogger) Errorf(format string, v ...any)  { l.emit(slog.LevelError, format, v) }
func (l *natsLogger) Debugf(format string, v ...any)  { l.emit(slog.LevelDebug, format, v) }
func (l *natsLogger) Tracef(format string, v ...any)  {}
func (l *natsLogger) Fatalf(format string, v ...any) {
	msg := fmt.Sprintf(format, v...)
	l.log.Error(msg)
	select {
	case l.fatal <- msg:
	default:
	}
}

// emit writes one line if the rate allows it.
func (l *natsLogger) emit(level slog.Level, format string, v []any) {
	if level == slog.LevelDebug {
		// Debug lines are off in production: check before formatting,
		// so a dropped one costs no Sprintf.
		if l.log.Enabled(context.Background(), slog.LevelDebug) {
			l.log.Debug(fmt.Sprintf(format, v...))
		}
		return
	}
	ok, sup := l.rate.Allow()
	if !ok {
		return
	}
	msg := fmt.Sprintf(format, v...)
	if sup > 0 {
		l.log.Log(context.Background(), level, msg, "suppressed_before", sup)
		return
	}
	l.log.Log(context.Background(), level, msg)
}
