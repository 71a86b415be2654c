import dagster as dg

PROJECTS = "projects"  # the dynamic partitions definition: one partition per project id
projects_partitions = dg.DynamicPartitionsDefinition(name=PROJECTS)
