package synflood

// Internals for the external tests (send_linux_test.go), which import
// deploy/lab and so cannot live in this package.
const (
	IPLen  = ipLen
	TCPLen = tcpLen
)

var (
	Checksum = checksum
	Sum16    = sum16
)
