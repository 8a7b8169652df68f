// Command mqttpeer is the peer figure for uplink's BenchmarkDrainQoS1: it starts mosquitto on a
// free loopback port and times `mosquitto_pub -l -q 1` publishing the same number of the same
// event messages, read from a file, each one acknowledged (PUBACK) before mosquitto_pub exits.
//
//	go run ./bench/mqttpeer -n 20000 -rounds 3
package main
