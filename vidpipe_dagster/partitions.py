import dagster as dg

projects_partitions = dg.DynamicPartitionsDefinition(name="projects")
