-- Run once by the postgres image on an empty data folder (docker-compose.yml): the rollback
-- webhook's decision store lives next to MLflow's backend store, owned by the same user.
CREATE DATABASE webhook OWNER driftwatch;
