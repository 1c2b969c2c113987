// Package policy reads, validates and serves synwall's policy files: which
// services are guarded and how, what their SYN-ACKs advertise, table sizes,
// timeouts, rate limits and queue settings. A file is decoded strictly into a
// raw form and validated into an immutable *Policy; errors name the file, the
// line, the field and the allowed range.
//
// # Defaults
//
// Every default and allowed range is defined once, in defaults.go: Parse
// starts each file from those defaults (defaultPolicy, defaultService), New
// fills the zero fields of Go-built policies from the same ones, and the
// embedded default.yaml (Default) names only the lab's service, taking every
// other value from there. deploy/policies/README.md documents the file
// schema with the same defaults and ranges; TestDocumentedDefaults parses its
// tables and fails when documentation and code drift apart.
//
// # Packet path
//
// LookupIP, Allowed and Denied are on the packet path and never allocate.
//
// # Reload
//
// A new policy is swapped in whole (the engine keeps an atomic pointer).
// Table sizes and queue settings are fixed when the gateway starts:
// NeedsRestart lists such changes, Diff lists all of them for the log.
package policy
