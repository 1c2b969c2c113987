// Package policy reads, validates and serves synwall's policy files: which
// services are guarded and how, what their SYN-ACKs advertise, table sizes,
// timeouts, rate limits and queue settings. A file is decoded strictly into a
// raw form and validated into an immutable *Policy; errors name the file, the
// line, the field and the allowed range.
package policy
