package wire

import "regexp"

// JobCreated answers SubjectJobsCreate (the body of POST /v1/jobs is the
// request, forwarded unchanged).
type JobCreated struct {
	JobID  string `json:"job_id"`
	SSEURL string `json:"sse_url"`
}

// JobRef names a job on SubjectJobsCancel and SubjectJobsReplay.
type JobRef struct {
	JobID string `json:"job_id"`
}

// JobCancelled answers SubjectJobsCancel.
type JobCancelled struct {
	JobID  string `json:"job_id"`
	Status string `json:"status"` // "cancelled"
}

// JobEvent is one narration entry of a job, published on
// JobEventsSubject(id) and kept for replay. Seq starts at 1 and has no
// gaps. The last event of a job has End set and no Text.
type JobEvent struct {
	Seq  int    `json:"seq"`
	Text string `json:"text,omitempty"` // may span lines; each becomes a data: line
	End  string `json:"end,omitempty"`  // "[DONE]", "[ERROR] <msg>" or "[CANCELLED]"
}

// JobReplay answers SubjectJobsReplay: every event kept so far, in order.
type JobReplay struct {
	JobID  string     `json:"job_id"`
	Events []JobEvent `json:"events"`
}

// End markers of a job stream, as the Queen's job-client reads them.
const (
	EndDone      = "[DONE]"
	EndCancelled = "[CANCELLED]"
	EndErrorPfx  = "[ERROR] "
)

var jobIDPattern = regexp.MustCompile(`^job-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

// ValidJobID reports whether id has the job-<uuid> form. Only such ids may
// be put into a subject: anything else could carry '.', '*' or '>'.
func ValidJobID(id string) bool { return jobIDPattern.MatchString(id) }
