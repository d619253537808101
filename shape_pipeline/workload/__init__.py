"""The app's typical queries and their plans: a workload file (`spec`), its SQL rendered through
the schema mapping (`render`), parameters chosen by rank inside the database (`parameters`),
`EXPLAIN ANALYZE` reduced to a plan's shape (`explain`), two runs compared (`compare`), and the
`workload` command (`command`)."""
