DROP TABLE llm_usage_daily;
DROP TABLE llm_usage_records;
DROP TABLE cus_integrations;
