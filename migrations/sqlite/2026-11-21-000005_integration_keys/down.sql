DROP TABLE cus_integration_keys;
