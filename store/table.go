package store

import (
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// Table is a small durable key/value table. Values are opaque bytes (the agent stores JSON).
// Every Put and Delete is its own fsynced transaction: these tables change a few times a day.
type Table struct {
	db     *bolt.DB
	bucket []byte
}

// Get returns a copy of the value stored under key and whether it exists.
func (t *Table) Get(key string) ([]byte, bool, error) {
	var val []byte
	var ok bool
	err := t.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(t.bucket)
		if b == nil {
			return nil
		}
		if v := b.Get([]byte(key)); v != nil {
			val, ok = append([]byte{}, v...), true
		}
		return nil
	})
	if err != nil {
		return nil, false, fmt.Errorf("store: %s: get %q: %w", t.bucket, key, err)
	}
	return val, ok, nil
}

// Put stores value under key, replacing any previous value.
func (t *Table) Put(key string, value []byte) error {
	err := t.db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(t.bucket)
		if err != nil {
			return err
		}
		if value == nil {
			value = []byte{} // bbolt treats a nil value as empty; be explicit
		}
		return b.Put([]byte(key), value)
	})
	if err != nil {
		return fmt.Errorf("store: %s: put %q: %w", t.bucket, key, err)
	}
	return nil
}

// Delete removes key; deleting a missing key is not an error.
func (t *Table) Delete(key string) error {
	err := t.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(t.bucket)
		if b == nil {
			return nil
		}
		return b.Delete([]byte(key))
	})
	if err != nil {
		return fmt.Errorf("store: %s: delete %q: %w", t.bucket, key, err)
	}
	return nil
}

// All returns a copy of every key and value in the table.
func (t *Table) All() (map[string][]byte, error) {
	all := make(map[string][]byte)
	err := t.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(t.bucket)
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			all[string(k)] = append([]byte{}, v...)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("store: %s: list: %w", t.bucket, err)
	}
	return all, nil
}
