"""The warehouse SQL (scripts/sql/summary*.sql) on DuckDB and ClickHouse (chDB) against the SQLite version. A
package, so that its modules never clash with the other e2e suites' names."""
