//! Every transition graph.yaml does not allow from a state is answered 409 with the state
//! and what it allows, for every state × transition pair (both taken from the graph).

mod common;

use common::{maker, on_every_backend, principal};
use delivery_core::{DeliveryState, Transition};
use poem::http::StatusCode;
use serde_json::json;

#[tokio::test]
async fn every_illegal_transition_is_a_409_naming_the_state_and_what_it_allows() {
    on_every_backend(async |app| {
        let mut checked = 0;
        for state in DeliveryState::ALL {
            let id = app.delivery_in(state).await;
            let path = format!("/v1/deliveries/{id}/transitions");
            let allowed = state.allowed_transitions();
            for transition in Transition::ALL.into_iter().filter(|t| !allowed.contains(t)) {
                // Made by a role that may make it, so that only the graph says no.
                let reply = app
                    .transition(&id, transition, &principal(maker(transition)))
                    .await;
                reply.assert_problem(StatusCode::CONFLICT, "illegal-transition", &path);
                assert_eq!(
                    reply.json["current_state"],
                    state.name(),
                    "{state} {transition}"
                );
                assert_eq!(reply.json["attempted_transition"], transition.name());
                let allowed_names: Vec<_> = allowed.iter().map(|t| t.name()).collect();
                assert_eq!(
                    reply.json["allowed_transitions"],
                    json!(allowed_names),
                    "{state} {transition}"
                );
                checked += 1;
            }
            let unchanged = app
                .get(
                    &format!("/v1/deliveries/{id}"),
                    &principal(maker(Transition::PickUp)),
                )
                .await;
            assert_eq!(
                unchanged.json["state"],
                state.name(),
                "a refused transition changes nothing"
            );
        }
        let edges: usize = DeliveryState::ALL
            .iter()
            .map(|s| s.allowed_transitions().len())
            .sum();
        assert_eq!(
            checked,
            DeliveryState::ALL.len() * Transition::ALL.len() - edges
        );
    })
    .await;
}
