// Command motion measures camgate's alarm path end to end: from the end of a camera's SMTP DATA
// to the motion event arriving at a loopback HTTP event sink, through a real `camgate run`.
//
// It configures camgate with many disabled static cameras, SMTP on loopback and one event sink
// (served by this program, answering 200 at once), then
//
//  1. sends one alarm mail per camera (each one makes a motion_started) at a steady rate and
//     prints p50/p90/p99/max of the delay from the DATA terminator to the event's arrival;
//
//  2. sends a sustained stream of alarms from a few cameras and samples camgate's RSS from
//     /proc every second, to show whether memory grows, and checks that every event camgate
//     owes (including the motion_stopped of phase 1) reaches the sink, so no queue builds up.
//
//     go run ./bench/motion -bin bin/camgate
//
// Nothing leaves loopback.
package main
