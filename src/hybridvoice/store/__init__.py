"""One key-value store interface (:mod:`.kv`) with two backends: SQLite, the embedded default for
one machine (:mod:`.sqlite_kv`), and an etcd cluster (:mod:`.etcd_kv`). See docs/fleet.md."""
