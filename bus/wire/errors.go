package wire

// ErrorReply is the body of a failed request/reply exchange. Code says
// what kind of failure it is; the gateway picks the HTTP status from it.
type ErrorReply struct {
	Error      string `json:"error"`
	Code       string `json:"code"`
	RetryAfter int    `json:"retry_after,omitempty"` // seconds
}

// Error codes of ErrorReply.
const (
	CodeInvalid     = "invalid"      // the request is malformed or breaks a rule
	CodeNotFound    = "not_found"    // no such job, worker or model
	CodeBusy        = "busy"         // too much in flight; retry after RetryAfter
	CodeConflict    = "conflict"     // a limit of live state is reached (workers)
	CodeForbidden   = "forbidden"    // the caller may not do this
	CodeRateLimited = "rate_limited" // too many such requests; retry after RetryAfter
	CodeInternal    = "internal"
)
