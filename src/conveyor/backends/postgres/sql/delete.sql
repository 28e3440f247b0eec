-- delete: remove a job that is not running. Parameters: id.
DELETE FROM {schema}.jobs WHERE id = %(id)s AND state <> 'running' RETURNING *
