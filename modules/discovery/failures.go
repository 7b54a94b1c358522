package discovery

import "log/slog"

// failureLog throttles the logging of consecutive push failures as the
// original did: the 1st, the 10th, then every 60th; and the recovery.
type failureLog struct {
	log   *slog.Logger
	count int
}

func (f *failureLog) failed(err error) {
	f.count++
	switch {
	case f.count == 1:
		f.log.Warn("push to Queen failed", "err", err)
	case f.count == 10:
		f.log.Error("push to Queen failing", "consecutive", f.count, "err", err)
	case f.count%60 == 0:
		f.log.Error("push to Queen still failing", "consecutive", f.count, "err", err)
	}
}

func (f *failureLog) ok() {
	if f.count > 0 {
		f.log.Info("push to Queen recovered", "after_failures", f.count)
	}
	f.count = 0
}
