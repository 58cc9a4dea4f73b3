DROP TABLE killswitch_state;
