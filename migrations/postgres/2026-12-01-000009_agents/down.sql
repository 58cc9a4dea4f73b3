DELETE FROM killswitch_state WHERE entity_type = 'agent';
ALTER TABLE killswitch_state DROP CONSTRAINT killswitch_state_entity_type_check;
ALTER TABLE killswitch_state ADD CONSTRAINT killswitch_state_entity_type_check
    CHECK (entity_type IN ('tenant', 'key'));
DROP INDEX api_keys_agent_idx;
ALTER TABLE api_keys DROP COLUMN agent_id;
DROP TABLE agent_manifests;
DROP TABLE agents;
