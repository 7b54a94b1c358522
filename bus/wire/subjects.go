package wire

import (
	"fmt"
	"regexp"
)

// Subjects are the contracts between modules. The body of each is named
// beside it; every body is JSON.
const (
	// SubjectTelemetry carries one TelemetryEvent per collector tick, the
	// very bytes the gateway sends as SSE data. Header HeaderHiveID names
	// the publishing hive.
	SubjectTelemetry = "hive.telemetry"

	// SubjectLoad carries LoadEvent: a worker's engine load that moved
	// between two telemetry events (collector → gateway, NATS edge).
	SubjectLoad = "hive.load"

	// SubjectWorkersStarted and SubjectWorkersStopped carry a WorkerEvent:
	// a process another module started or stopped, for the collector.
	SubjectWorkersStarted = "hive.workers.started"
	SubjectWorkersStopped = "hive.workers.stopped"
	// SubjectWorkersList is request/reply: an empty body answered with a
	// WorkerList of the workers started and not yet stopped, for a
	// collector that subscribed after they were announced.
	SubjectWorkersList = "hive.workers.list"

	// SubjectCapabilitiesGet is request/reply: an empty or
	// CapabilitiesRequest body, answered with a Capabilities body.
	SubjectCapabilitiesGet = "hive.capabilities.get"

	// SubjectDiscoveryQueen is request/reply: a QueenURL learnt from
	// /capabilities?queen_url=, answered with QueenAccepted or an
	// ErrorReply (forbidden, rate_limited, invalid).
	SubjectDiscoveryQueen = "hive.discovery.queen"

	// SubjectJobsCreate is request/reply: a JobCreate body answered with a
	// JobCreated or an ErrorReply body.
	SubjectJobsCreate = "hive.jobs.create"
	// SubjectJobsCancel is request/reply: a JobRef answered with a
	// JobCancelled or an ErrorReply body.
	SubjectJobsCancel = "hive.jobs.cancel"
	// SubjectJobsReplay is request/reply: a JobRef answered with JobReplay,
	// the narration so far, so a late stream starts from the beginning.
	SubjectJobsReplay = "hive.jobs.replay"
	// SubjectHiveShutdown is request/reply: an empty body asks the hive to
	// shut down gracefully; the reply comes before the shutdown starts.
	SubjectHiveShutdown = "hive.shutdown"
)

// SubjectHistoryGet is request/reply at a hub: a JetStream direct get
// request for one hive's subject, answered by a historian
// (internal/historian) with JetStream's messages, bounded per client; a
// request past a bound gets status 429. Public clients read the history
// only through it (deployments/hub.conf).
const SubjectHistoryGet = "hive.history.get"

// HeaderHiveID is the NATS header that names the hive on telemetry.
const HeaderHiveID = "Hive-Id"

// JobEventsSubject is where a job's narration is published, one JobEvent
// per message, in order. jobID must satisfy ValidJobID.
func JobEventsSubject(jobID string) string { return "hive.jobs." + jobID + ".events" }

// hiveToken is what a hive id may hold to name a subject: NATS tokens of
// letters, digits, '-' and '_', separated by single dots (gpu-07.dc1).
var hiveToken = regexp.MustCompile(`^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$`)

// TelemetrySubjectFor is hive.telemetry.<hive id>: one hive's telemetry at
// a hub, where a stream on hive.telemetry.> keeps every hive's history and
// a consumer filtered on this subject reads one hive's alone. An id that
// cannot be a subject (spaces, wildcards, empty tokens) is an error.
func TelemetrySubjectFor(hiveID string) (string, error) {
	if len(hiveID) > 128 || !hiveToken.MatchString(hiveID) {
		return "", fmt.Errorf("bus: hive id %q cannot name a subject: use letters, digits, '-', '_' and single dots, at most 128", hiveID)
	}
	return SubjectTelemetry + "." + hiveID, nil
}
