// Package crash is the fault tests' way to kill the bot at a named moment:
// Point("post-request") is a no-op, unless the binary is built with the
// crashpoints build tag and COMPUTEBOT_CRASH_AT names that point. Then the
// process exits at once (status 3), without any cleanup, as a kill -9 or a
// power cut would leave it; the test restarts it on the same store.
//
// The points mark the moments where a crash tests the bot's promises:
// after an ack, after a Slack post whose result is not saved yet, before
// and after RunInstances and each lifecycle call. Production builds have
// no crashpoints tag: Point compiles to nothing.
package crash

// ExitCode is the status a crash point exits with.
const ExitCode = 3

// EnvVar names the point to crash at: "NAME", or "NAME#N" for its N-th
// hit (1 is the first).
const EnvVar = "COMPUTEBOT_CRASH_AT"
