DROP TABLE auth_epoch;
DROP TABLE api_keys;
