// Package policy reads, validates and serves synwall's policy files: which
// services are guarded and how, what their SYN-ACKs advertise, table sizes,
// timeouts, rate limits and queue settings. A file is decoded strictly into a
// raw form and validated into an immutable *Policy; errors name the file, the
// line, the field and the allowed range.
//
// The file schema, every field's default and allowed range are described in
// deploy/policies/README.md; Default returns the embedded policy/default.yaml.
// Lookup, Allowed and Denied are on the packet path and never allocate.
//
// A new policy is swapped in whole (the engine keeps an atomic pointer).
// Table sizes and queue settings are fixed when the gateway starts:
// NeedsRestart lists such changes, Diff lists all of them for the log.
package policy
