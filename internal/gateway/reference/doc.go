// Package reference is a slow, obvious implementation of the engine's SYN
// path with gopacket: decode the SYN with gopacket.NewPacket, compute the
// same cookie and options, and serialize the SYN-ACK with SerializeLayers.
// It exists to check the engine against (differential tests) and to measure
// what the engine's byte-slice views save (BenchmarkReferenceSYN).
package reference
