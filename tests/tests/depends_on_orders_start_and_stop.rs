//! Compose `depends_on` on a real device: services start after what they
//! depend on (ties by name) and, when the release is replaced, stop in
//! the reverse order.

use petrel_tests::*;

/// Instance names in the order the agent logged `what` for them.
fn logged(agent: &Agent, what: &str) -> Vec<String> {
    agent
        .log()
        .lines()
        .filter(|l| l.contains(what))
        .filter_map(|l| {
            let rest = l.split("instance=").nth(1)?;
            Some(rest.split_whitespace().next()?.to_string())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn services_start_after_their_dependencies_and_stop_in_reverse() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let ctl = Controller::start(&tmp.path().join("ctl"))?;
    let client = ctl.client();
    let agent = Agent::start(tmp.path(), "dep-1", &ctl.broker_url(), &ctl.url())?;
    sample_image(&client, tmp.path(), "v1", "1", &[]).await?;
    // a depends on c, c on b: b, c, a (not a, b, c)
    let compose = |extra: &str| {
        format!(
            "services:\n  a:\n    image: sample-app:v1\n    depends_on: [c]\n{extra}  b:\n    image: sample-app:v1\n{extra}  c:\n    image: sample-app:v1\n    depends_on:\n      b: {{condition: service_started}}\n{extra}"
        )
    };
    client.create_release("deps", "1", &compose("")).await?;
    client
        .deploy("deps@1", std::slice::from_ref(&agent.id))
        .await?;
    wait_converged(&client, &agent.id, "1").await?;
    assert_eq!(logged(&agent, "starting"), ["b-g1", "c-g1", "a-g1"]);

    let env = "    environment: {V: \"2\"}\n";
    client.create_release("deps", "2", &compose(env)).await?;
    client
        .deploy("deps@2", std::slice::from_ref(&agent.id))
        .await?;
    wait_converged(&client, &agent.id, "2").await?;
    assert_eq!(
        logged(&agent, "starting"),
        ["b-g1", "c-g1", "a-g1", "b-g2", "c-g2", "a-g2"]
    );
    assert_eq!(logged(&agent, "stopping"), ["a-g1", "c-g1", "b-g1"]);
    Ok(())
}
