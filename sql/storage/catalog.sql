-- What a session's databases hold: tables and columns, read from DuckDB's catalog.

-- name: tables_of
select table_name from duckdb_tables() where database_name = $database and schema_name = $schema;

-- name: tables_in_order
select table_name from duckdb_tables() where database_name = $database order by 1;

-- name: columns_of
select column_name from information_schema.columns
where table_name = $table and table_catalog = $database and table_schema = 'main'
order by ordinal_position;

-- name: text_columns
select table_name, column_name from duckdb_columns()
where database_name = $database and data_type = 'VARCHAR'
order by table_name, column_index;

-- name: text_columns_of
select column_name from duckdb_columns()
where database_name = $database and table_name = $table and data_type = 'VARCHAR';

-- name: databases
select database_name from duckdb_databases();

-- name: database_path
select path from duckdb_databases() where database_name = $database;
