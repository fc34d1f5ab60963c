-- Rows of an instance made by release 0.1.0 (commit b55a0bf): `sts init --demo`, then `sts role add sts-users`,
-- `sts user add alice --role admin --role sts-users --claim ...`, `sts user add SECONDARY/bob --digest ...`,
-- `sts user add carol` + `sts user disable carol`, `sts rp add https://app.example.com/wstrust/ --cert app.crt.pem
-- --token-type saml11 --claim ...` (a certificate from `openssl req -x509`), and one token issued to alice.
-- Users 5, 6 and 8: `sts user add PRIMARY/SECONDARY/carol`, `SECONDARY/x/y` and `a／b` (fullwidth), which 0.1.0 accepted.
-- User 7: `sts user add dan --role admin --claim http://wso2.org/claims/role=superuser` (0.1.0 issued superuser).
-- Applied by tests/unit/cli/test_upgrade_0_1_0.py after migration 0001 (the schema 0.1.0 created, meta.schema_version 1).
INSERT INTO "meta" VALUES('rp_version','3');
INSERT INTO "relying_parties" VALUES('https://app.example.com/wstrust/','https://app.example.com/wstrust/','{"address": "https://app.example.com/wstrust/", "applies_to_in_response": true, "cert_file": "https-app-example-com-wstrust-ff2406f5.crt.pem", "cipher": "", "claim_mapping": [], "claims": ["http://wso2.org/claims/emailaddress", "http://wso2.org/claims/role"], "encrypt": true, "identifier": "", "key_transport": "", "lifetime": 0, "match": "exact", "nameid": "", "profile": "", "token_type": "saml11"}',1.79663373650514459614e+09,1.79663373650514459614e+09);
INSERT INTO "roles" VALUES('admin','admin');
INSERT INTO "roles" VALUES('sts-users','sts-users');
INSERT INTO "roles" VALUES('auditors','auditors');
INSERT INTO "tokens" VALUES('_5b2aa42993588c54b91247dc415b2224076a5519','PRIMARY/alice','https://app.example.com/wstrust/','urn:oasis:names:tc:SAML:1.0:assertion',1796633703.0,1796634063.0,'issued',1,0,'8a0965a392fdc086cb948e46286d9ba63d70c183ea41ba6099b264b372eec9cb','{"trust_ns":"http://docs.oasis-open.org/ws-sx/ws-trust/200512","token_type":"urn:oasis:names:tc:SAML:1.0:assertion","key_kind":"Bearer","key_type_uri":"http://docs.oasis-open.org/ws-sx/ws-trust/200512/Bearer","key_bits":null,"name_id":"alice","name_id_format":"urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified","attributes":[["http://wso2.org/claims/emailaddress",["alice@example.com"]],["http://wso2.org/claims/role",["admin","sts-users"]]],"authn_context":"urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport","chain_started":1796633763.0,"use_key":null}',1796635863.0);
INSERT INTO "user_claims" VALUES(1,'http://wso2.org/claims/emailaddress',0,'admin@example.com');
INSERT INTO "user_claims" VALUES(1,'http://wso2.org/claims/givenname',0,'Demo');
INSERT INTO "user_claims" VALUES(1,'http://wso2.org/claims/lastname',0,'Administrator');
INSERT INTO "user_claims" VALUES(1,'http://wso2.org/claims/role',0,'admin');
INSERT INTO "user_claims" VALUES(2,'http://wso2.org/claims/emailaddress',0,'alice@example.com');
INSERT INTO "user_claims" VALUES(2,'http://wso2.org/claims/givenname',0,'Alice');
INSERT INTO "user_claims" VALUES(3,'http://wso2.org/claims/emailaddress',0,'bob@example.com');
INSERT INTO "user_roles" VALUES(1,'admin');
INSERT INTO "user_roles" VALUES(2,'sts-users');
INSERT INTO "user_roles" VALUES(2,'admin');
INSERT INTO "user_roles" VALUES(3,'admin');
INSERT INTO "user_roles" VALUES(3,'auditors');
INSERT INTO "users" VALUES(1,'PRIMARY','admin','admin','$argon2id$v=19$m=19456,t=2,p=1$kxLinNPa2/s/Rwgh5DxnjA$oBWv0dglQ0d0eVgSnYKOu1skeehUss+oZvY2eZLVcqc',NULL,1,1.79663373037262892725e+09,1.79663373037262892725e+09);
INSERT INTO "users" VALUES(2,'PRIMARY','alice','alice','$argon2id$v=19$m=19456,t=2,p=1$9x6DcM75H6O01tqbU2oNQQ$nXfWsbyVO7lhZgQJMfDSVfhriUpaO+TJq+LRZb3oAQ0',NULL,1,1.79663373496995830533e+09,1.79663373496995830533e+09);
INSERT INTO "users" VALUES(3,'SECONDARY','bob','bob','$argon2id$v=19$m=19456,t=2,p=1$PyfEGIOQ0poTQijlXKvVmg$1XlIBQZPbX6kEt5AzGZlFRTnsWw720IEbiyUoPwkORE',X'EDE50174A7147BD1554FB023510BB3E2B53FDC2C5785AAA0BD73E38E0A93F5000E93D8CDE2B332CD5069F6D3A218F5B936296D',1,1.79663373533744525909e+09,1.79663373533744525909e+09);
INSERT INTO "users" VALUES(4,'PRIMARY','carol','carol','$argon2id$v=19$m=19456,t=2,p=1$EOIcQyhFaG3tHQMgpHSOsQ$56sj5jMCas6gRiEPFGczyUPnCELlBkEE4ySEHFY39SA',NULL,0,1.79663373569458222392e+09,1.79663373603646755213e+09);
INSERT INTO "users" VALUES(5,'PRIMARY','SECONDARY/carol','secondary/carol','$argon2id$v=19$m=19456,t=2,p=1$zbnXGiNkjDHG2Pu/t9Y6Bw$w6h/q2z++5m12VKsM55coicbfsJbGpUKlmtf5xgUkWQ',NULL,1,1.79663420280262541763e+09,1.79663420280262541763e+09);
INSERT INTO "users" VALUES(6,'SECONDARY','x/y','x/y','$argon2id$v=19$m=19456,t=2,p=1$opSSEgIgBKDU2tt7b02pNQ$PqSyVqhXlFmkVUfp+99T4HyBU9mmb5/14cn7LNvnlYc',NULL,1,1.7966342031398582458e+09,1.7966342031398582458e+09);
INSERT INTO "user_roles" VALUES(5,'admin');
INSERT INTO "users" VALUES(7,'PRIMARY','dan','dan','$argon2id$v=19$m=19456,t=2,p=1$u1fKWavVWosRYkwp5dz7Hw$4tGX910HWj1h2tGcXt39rgfN2NvYd4gCEiJRStl6doM',NULL,1,1.79663420667972803111e+09,1.79663420667972803111e+09);
INSERT INTO "user_claims" VALUES(7,'http://wso2.org/claims/role',0,'superuser');
INSERT INTO "user_roles" VALUES(7,'admin');
INSERT INTO "users" VALUES(8,'PRIMARY','a／b','a／b','$argon2id$v=19$m=19456,t=2,p=1$vte6N8Z4b+1dS4kRghDivA$UPbznCGh5ybQLo4HxjKP1TVGSa+RCUNWuAt+81GE+4c',NULL,1,1.79663420349202108388e+09,1.79663420349202108388e+09);
