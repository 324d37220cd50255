-- The run events of background responses, recorded as the engine publishes them, so a client
-- can stream such a response again from any point (`GET /responses/{id}?stream=true&
-- starting_after=N`): the API translates them into the Responses stream the same way every
-- time. `n` is the event's position in its response's stream; a position taken twice (a
-- worker that lost its lease) keeps the first event.

CREATE TABLE response_events (
    response_id TEXT NOT NULL,
    n           BIGINT NOT NULL,
    event       TEXT NOT NULL,
    data        TEXT NOT NULL,
    PRIMARY KEY (response_id, n)
);
