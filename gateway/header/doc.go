// Package header holds zero-allocation views of IPv4, IPv6 and TCP headers and
// TCP options, Internet checksums (RFC 1071, incremental per RFC 1624), and
// the sanity rules for TCP flags that synwall applies before it touches any
// state.
//
// Bounds contract: Parse validates every length once, at the edge; after a
// nil-reason Parse the accessors of the views it returned do not check bounds
// again. A view built by hand must be long enough for what is read.
//
// The package depends on nothing of synwall's.
package header
