//! The conformance suite against an external S3 service (AWS, MinIO, Garage, Ceph RGW). Run it
//! with `STRATA_TEST_S3_ENDPOINT`, `STRATA_TEST_S3_BUCKET`, `STRATA_TEST_S3_ACCESS_KEY_ID` and
//! `STRATA_TEST_S3_SECRET_ACCESS_KEY` set and `-- --include-ignored`; `scripts/test` does so when
//! the endpoint variable is set. Each test works under a fresh random prefix of the bucket.

use strata_storage::testing::S3Fixture;

strata_storage::conformance_tests!(
    S3Fixture::external(),
    #[ignore = "needs STRATA_TEST_S3_ENDPOINT and friends; scripts/test runs it when they are set"]
);
