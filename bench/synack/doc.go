// Command synack measures the SYN path of each defense in the namespace
// lab (deploy/lab) and writes the table of bench/RESULTS.md's "SYN path"
// section: per offered rate (50k and 150k spoofed SYNs per second by
// default) and address family (IPv4, IPv6), the drop baseline (the gateway
// drops the spoofed SYNs), kernel SYNPROXY, synwall on NFQUEUE alone and
// synwall with its BPF SYN stage (where the binary has --syn-stage; else
// the row says "not available in this build"):
//
//   - SYN-ACKs per second, counted where they arrive (the attacker
//     namespace's raw-table counter for SYN-ACKs to the spoofed prefixes);
//   - the whole machine's busy CPU over the run (/proc/stat), the least
//     busy of -repeat runs (other work on a shared machine only adds; the
//     baseline runs first and again last; each run waits up to 10 s for
//     the machine to be less busy than -quiet);
//   - CPU per SYN-ACK above the drop baseline of the same offered load,
//     and synwall's over SYNPROXY's from the same run.
//
// Then, IPv4 only: the SYN-ACK rate with the machine saturated (two
// generators at -sat-rate each and one hping3 -S --flood, bounded by
// -sat-duration), and legitimate success under two hping3 floods plus a
// generator at -legit-rate while the client makes -conns HTTP connections.
//
//	cd bench && go run ./synack [-rates 50000,150000] [-families 4,6] [-duration 5s] [-repeat 3] [-out SYNACK.md]
//	cd bench && go run ./synack -short     # about 40 s, what TestShort runs
//
// It builds synwall from the checkout (or runs -synwall BINARY) and the
// generator (bench/synflood: sources only in 198.19.0.0/16 and
// 2001:db8:ff::/48, every run bounded in count and time), prints the
// markdown report and writes it with the command line and the machine to
// -out. Needs root; only the lab's namespaces see any traffic. Compare
// ratios within one report, never absolute numbers across reports.
package main
