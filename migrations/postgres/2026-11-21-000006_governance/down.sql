DROP TABLE policy_modules;
DROP TABLE incidents;
DROP TABLE approvals;
DROP TABLE audit_heads;
DROP TABLE audit_events;
DROP FUNCTION audit_events_append_only();
DROP INDEX mcp_tool_invocations_tenant_idx;
ALTER TABLE mcp_tool_invocations DROP COLUMN output_bytes, DROP COLUMN approval_id, DROP COLUMN incident_id,
    DROP COLUMN policy_reasons, DROP COLUMN policy_revision, DROP COLUMN policy_id;
ALTER TABLE mcp_servers DROP COLUMN manifest_issued_at, DROP COLUMN manifest, DROP COLUMN max_output_bytes,
    DROP COLUMN call_timeout_ms;
ALTER TABLE mcp_tools DROP COLUMN quarantine_reason, DROP COLUMN quarantined, DROP COLUMN approved_hash;
