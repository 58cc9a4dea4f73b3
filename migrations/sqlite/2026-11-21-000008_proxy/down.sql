DROP TABLE proxy_calls;
DROP TABLE proxy_spend;
DROP TABLE proxy_settings;
