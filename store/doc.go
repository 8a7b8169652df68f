// Package store is the only package that opens the bbolt database: cameras, settings and the
// durable outbox.
//
// It imports nothing of camgate's and interprets no payload: it remembers bytes safely and in
// order, with group commit so that flash is not worn by one fsync per message.
package store
